import LookaheadProtocol
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Where the daemon listens: a socket systemd passed in, or a path it binds itself.
public enum Listener: Sendable, Equatable {
    case activated(fd: Int32)
    case path(String, mode: UInt32)
}

/// The event loop every connection of both surfaces (framed socket, HTTP) runs on, and the pool
/// that parses large requests and tokenises long prompts off it. Shut down last, after both
/// servers stopped accepting.
public final class Network: Sendable {
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool

    public init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
    }

    var offload: Offload { .pool(pool) }

    /// Closes every connection and ends the threads.
    public func shutdown() {
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
    }
}

/// The Unix-socket server: SwiftNIO with our own frame decoder in front of `ConnectionHandler`.
public final class Server: Sendable {
    private let channel: any Channel
    public let description: String

    public init(service: Methods, listener: Listener, network: Network) throws {
        let limits = service.config.connectionLimits, offload = network.offload
        let bootstrap = ServerBootstrap(group: network.group)
            .serverChannelOption(.backlog, value: 256)
            // Past the high mark of unsent reply bytes a connection turns unwritable and its
            // requests are no longer read; below the low mark it reads again.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: limits.maxUnsentBytes / 2, high: limits.maxUnsentBytes))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(NIOFrameDecoder(maxPayload: limits.maxFrameBytes)),
                        ConnectionHandler(service: service, limits: limits, gate: service.connections, offload: offload),
                    ])
                }
            }
        switch listener {
        case .activated(let fd):
            channel = try bootstrap.withBoundSocket(fd).wait()
            description = "socket-activated fd \(fd)"
        case .path(let path, let mode):
            channel = try Server.bind(bootstrap, path: path, mode: mode)
            description = path
        }
    }

    /// Binds a Unix socket whose mode decides who may connect (0660: owner and group).
    static func bind(_ bootstrap: ServerBootstrap, path: String, mode: UInt32) throws -> any Channel {
        try prepareDirectory(of: path)
        let channel = try bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
        guard chmod(path, mode_t(mode)) == 0 else {
            let error = ServerError("chmod \(String(mode, radix: 8)) \(path): \(String(cString: strerror(errno)))")
            try? channel.close().wait()
            throw error
        }
        return channel
    }

    static func prepareDirectory(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        var st = stat()
        if stat(dir, &st) == 0 { return }
        var partial = ""
        for part in dir.split(separator: "/") {
            partial += "/" + part
            if stat(partial, &st) != 0, mkdir(partial, 0o755) != 0, errno != EEXIST {
                throw ServerError("cannot create \(partial) for the socket: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Stops accepting; open connections stay until the network shuts down.
    public func stopAccepting() { try? channel.close().wait() }
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
