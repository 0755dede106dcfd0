import CSystemd
#if canImport(Glibc)
import Glibc
#endif

/// Sockets handed over by systemd (lookaheadd.socket) or `systemd-socket-activate`.
public enum SocketActivation {
    /// The passed sockets (fds 3, 4, …); empty when the process was not socket-activated. Clears
    /// LISTEN_FDS/LISTEN_PID so nothing the daemon starts later takes the sockets for its own.
    public static func listenFileDescriptors() throws(SystemdError) -> [Int32] {
        let count = sd_listen_fds(1)
        // A malformed LISTEN_FDS must not be mistaken for "not activated": the daemon would then
        // bind the path itself while PID 1 still holds the socket there.
        guard count >= 0 else { throw SystemdError(call: "sd_listen_fds", errno: -count) }
        return (0..<count).map { SD_LISTEN_FDS_START + $0 }
    }

    /// Whether `fd` is a listening Unix stream socket — what lookaheadd.socket passes. Anything else
    /// means the socket unit and the daemon disagree, and accepting on it would fail or mislead.
    public static func isListeningUnixStreamSocket(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }
}

/// A libsystemd call that failed, with the errno it returned.
public struct SystemdError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}
