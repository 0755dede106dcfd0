import CLlama
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A ggml device a model's layers can live on: a local GPU, or one an `rpc-server` lends.
/// Unchecked: ggml's devices live as long as the process and are never changed.
public struct Device: @unchecked Sendable, Equatable, CustomStringConvertible {
    let pointer: ggml_backend_dev_t

    public var name: String { String(cString: ggml_backend_dev_name(pointer)) }
    /// A local GPU's model, or an RPC device's endpoint.
    public var detail: String { String(cString: ggml_backend_dev_description(pointer)) }
    public var description: String { "\(name) (\(detail))" }
    /// The `rpc-server` that lends it ("host:port"), nil for a device of this host.
    public var endpoint: String? { ggml_backend_dev_backend_reg(pointer) == ggml_backend_rpc_reg() ? detail : nil }

    public static func == (a: Device, b: Device) -> Bool { a.pointer == b.pointer }

    /// This process's own GPUs (none on a CPU build of llama.cpp): where models live when nothing
    /// else is said.
    public static var localGPUs: [Device] {
        LlamaBackend.initialise()
        return (0..<ggml_backend_dev_count()).map { Device(pointer: ggml_backend_dev_get($0)) }
            .filter { ggml_backend_dev_type($0.pointer) == GGML_BACKEND_DEVICE_TYPE_GPU }
    }
}

/// Devices lent by `rpc-server` processes, through ggml's RPC backend. The protocol has no
/// authentication and no encryption: such servers belong on a private network or behind a tunnel.
/// Their devices are not registered with ggml, so only a model given them explicitly uses them.
public enum RemoteDevices {
    private static let connected = Mutex<[String: [Device]]>([:])

    /// `endpoint`'s devices ("host:port", already taken apart as `host` and `port`), connecting
    /// once per process. A server that does not accept a connection within `timeout` seconds, or
    /// does not answer the RPC handshake, is an error naming it (ggml itself would abort the process).
    public static func connect(_ endpoint: String, host: String, port: UInt16, timeout: Double = 3) throws -> [Device] {
        LlamaBackend.initialise()
        if let devices = connected.withLock({ $0[endpoint] }) { return devices }
        try probe(endpoint, host: host, port: port, timeout: timeout)
        guard let registry = ggml_backend_rpc_add_server(endpoint), !hasFailed(endpoint) else {
            throw LlamaError.rpcServer(endpoint: endpoint, reason: "it accepted a connection but did not answer the RPC handshake (an rpc-server of another llama.cpp version?)")
        }
        let devices = (0..<ggml_backend_reg_dev_count(registry)).map { Device(pointer: ggml_backend_reg_dev_get(registry, $0)) }
        guard !devices.isEmpty else { throw LlamaError.rpcServer(endpoint: endpoint, reason: "it offers no device") }
        connected.withLock { $0[endpoint] = devices }
        return devices
    }

    /// Whether the connection to `endpoint` failed since the process started: its commands are
    /// dropped from then on, and passes that use it are not to be trusted.
    public static func hasFailed(_ endpoint: String) -> Bool { ggml_backend_rpc_endpoint_failed(endpoint) }

    /// Opens and closes a TCP connection to `host`:`port`.
    static func probe(_ endpoint: String, host: String, port: UInt16, timeout: Double) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else {
            throw LlamaError.rpcServer(endpoint: endpoint, reason: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw LlamaError.rpcServer(endpoint: endpoint, reason: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else {
                throw LlamaError.rpcServer(endpoint: endpoint, reason: "connect: \(String(cString: strerror(errno)))")
            }
            var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&waiting, 1, Int32(timeout * 1000)) == 1 else {
                throw LlamaError.rpcServer(endpoint: endpoint, reason: "no answer within \(timeout) s")
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { throw LlamaError.rpcServer(endpoint: endpoint, reason: "connect: \(String(cString: strerror(error)))") }
        }
    }
}
