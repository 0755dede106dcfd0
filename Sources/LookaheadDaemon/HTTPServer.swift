import DaemonConfig
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What the HTTP surface answers from: empty while the models load (everything but `/health`
/// then answers 503), filled once the daemon is ready.
final class ServiceSlot: Sendable {
    private let methods = Mutex<Methods?>(nil)
    var current: Methods? { methods.withLock { $0 } }
    func fill(_ m: Methods) { methods.withLock { $0 = m } }
}

/// What HTTP connections share beyond `Methods`: the bearer token, the limits, where heavy work
/// runs and the connection gate (shared with the framed socket).
struct HTTPSettings: Sendable {
    var apiKey: [UInt8]?
    var limits: ConnectionLimits
    var offload: Offload
    var gate: ConnectionGate
}

/// The OpenAI-compatible HTTP/1.1 surface (docs/protocol.md, "HTTP"): NIOHTTP1 in front of
/// `HTTPHandler`, on Unix sockets and loopback or authenticated TCP. It listens before the
/// models load, so `/health` can say "loading".
public final class HTTPServer: Sendable {
    private let channels: [any Channel]
    private let slot = ServiceSlot()
    public let description: String

    /// `apiKey`: the token every request but `/health` must bring as `Authorization: Bearer`.
    public init(endpoints: [HTTPEndpoint], socketMode: UInt32, apiKey: String?, limits: ConnectionLimits,
                gate: ConnectionGate, network: Network) throws {
        let slot = slot
        let settings = HTTPSettings(apiKey: apiKey.map { Array($0.utf8) }, limits: limits, offload: network.offload, gate: gate)
        func bootstrap(unix: Bool) -> ServerBootstrap {
            ServerBootstrap(group: network.group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: limits.maxUnsentBytes / 2, high: limits.maxUnsentBytes))
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(BytesInSignal())
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(HTTPHandler(slot: slot, settings: settings, unixSocket: unix))
                    }
                }
        }
        var bound: [any Channel] = []
        do {
            for endpoint in endpoints {
                switch endpoint {
                case .unix(let path):
                    bound.append(try Server.bind(bootstrap(unix: true), path: path, mode: socketMode))
                case .tcp(let host, let port):
                    bound.append(try bootstrap(unix: false).bind(host: host, port: port).wait())
                }
            }
        } catch {
            for channel in bound { try? channel.close().wait() }
            throw ServerError("http_listen: cannot listen: \(error)")
        }
        channels = bound
        description = endpoints.map(\.description).joined(separator: ", ")
    }

    /// The models are loaded: requests are answered from now on.
    public func serve(_ methods: Methods) { slot.fill(methods) }

    /// Stops accepting; open connections stay until the network shuts down.
    public func stopAccepting() { for channel in channels { try? channel.close().wait() } }
}

/// Tells the handler behind the HTTP decoder that bytes came in, before the decoder has a whole
/// request head: a request begun and never finished is timed from its first byte.
final class BytesInSignal: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    struct Event: Sendable {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireUserInboundEventTriggered(Event())
        context.fireChannelRead(data)
    }
}
