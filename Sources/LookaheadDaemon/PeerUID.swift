import NIOCore
import SystemdSupport
#if canImport(Glibc)
import Glibc
#endif

extension Channel {
    /// Who connected, as the kernel recorded it at connect() (SO_PEERCRED): jobs belong to its
    /// uid. nil when the channel is not a connected Unix socket. NIO does not expose the
    /// descriptor, but lets a `SocketOptionProvider` read an option of a given layout; on the
    /// channel's own event loop the future is already complete.
    func peerCredentials() -> EventLoopFuture<PeerCredentials?> {
        guard let provider = self as? any SocketOptionProvider else { return eventLoop.makeSucceededFuture(nil) }
        let raw: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return raw.map { PeerCredentials($0) }.recover { _ in nil }
    }
}
