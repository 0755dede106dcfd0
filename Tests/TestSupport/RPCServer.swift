import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// llama.cpp's `ggml-rpc-server` on a free loopback port, lending its CPU to the models of the test
/// that started it, with reference kernels (GGML_CPU_USE_REF=1) so a split model computes as a
/// batch-invariant local one does. Killed with the test process, or by `kill()`.
public final class RPCServer {
    public let endpoint: String
    public let process = Process()
    private let log: String

    /// The built server: beside the llama.cpp libraries the tests load (`LD_LIBRARY_PATH`, which
    /// the Makefile points at the build cache), in their prefix's bin/.
    public static var executable: String {
        get throws {
            let dirs = (ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":")
            for dir in dirs {
                let path = URL(fileURLWithPath: String(dir)).appendingPathComponent("../bin/ggml-rpc-server").standardized.path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
            throw TestFailure("ggml-rpc-server not found beside the llama.cpp libraries (LD_LIBRARY_PATH=\(dirs.joined(separator: ":"))): run `make deps`")
        }
    }

    /// `threads`: the server's own CPU threads, so several servers and the test share the cores.
    public init(threads: Int = 1) throws {
        let port = try Self.freePort()
        endpoint = "127.0.0.1:\(port)"
        log = NSTemporaryDirectory() + "/rpc-server-\(port).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: try Self.executable)
        process.arguments = ["-H", "127.0.0.1", "-p", "\(port)", "-t", "\(threads)"]
        var environment = ProcessInfo.processInfo.environment
        environment["GGML_CPU_USE_REF"] = "1"
        process.environment = environment
        let output = FileHandle(forWritingAtPath: log)
        process.standardOutput = output
        process.standardError = output
        try launch(process)
        try waitUntilListening(port: port)
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: log)
    }

    /// SIGKILL, as a host that loses power or a server that crashes.
    public func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    private func waitUntilListening(port: UInt16) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            guard process.isRunning else { throw TestFailure("ggml-rpc-server exited at start: \(output)") }
            if Self.accepts(port: port) { return }
            usleep(20_000)
        }
        throw TestFailure("ggml-rpc-server did not listen on \(endpoint) within 30 s: \(output)")
    }

    private static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A loopback port nobody listens on now (the kernel's choice for a bind to port 0).
    public static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = loopback(0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("bind: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }
}
