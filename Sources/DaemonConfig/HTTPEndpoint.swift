/// Where the OpenAI-compatible HTTP surface listens (`http_listen`): a Unix socket, permissioned
/// like the main one, or a TCP address. TCP beyond loopback needs `api_key_file`.
public enum HTTPEndpoint: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// `/run/lookaheadd/http.sock`, `127.0.0.1:8080`, `[::1]:8080` or `localhost:8080`.
    public init(parsing text: String) throws(HTTPEndpointError) {
        if text.hasPrefix("/") {
            guard text.utf8.count <= 107 else { throw HTTPEndpointError("\(text): longer than the 107 bytes a Unix socket path can hold") }
            self = .unix(path: text)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw HTTPEndpointError("'\(text)' is neither an absolute socket path nor HOST:PORT with a port in 1...65535")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host == "localhost" || Self.isIPv4(host) || host.contains(":") else {
            throw HTTPEndpointError("'\(host)' is not an IP address or localhost (names other than localhost are not resolved)")
        }
        self = .tcp(host: host, port: port)
    }

    /// Only this machine can connect: a Unix socket, 127.0.0.0/8, ::1 or localhost.
    public var isLoopback: Bool {
        switch self {
        case .unix: return true
        case .tcp(let host, _): return host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): return path
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    private static func isIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCIIDigit) && Int(p)! <= 255 }
    }
}

public struct HTTPEndpointError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
