#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connected Unix socket, as the kernel recorded it at connect() — not
/// something the client can claim. Jobs belong to `uid`.
public struct PeerCredentials: Sendable, Equatable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// nil when `fd` is not a connected Unix socket.
    public init?(socket fd: Int32) {
        var cred = UCred()
        var length = socklen_t(MemoryLayout<UCred>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0,
              length == MemoryLayout<UCred>.size
        else { return nil }
        self.init(cred)
    }

    /// What `getsockopt(SO_PEERCRED)` filled in; nil when the kernel recorded no peer (pid 0: an
    /// unconnected socket).
    public init?(_ cred: UCred) {
        guard cred.pid > 0 else { return nil }
        self.init(pid: cred.pid, uid: cred.uid, gid: cred.gid)
    }
}

/// `struct ucred` from <sys/socket.h>, which Glibc's Swift module leaves out (it needs _GNU_SOURCE).
/// Public for getsockopt wrappers that allocate the buffer themselves from its layout (SwiftNIO's
/// `unsafeGetSocketOption`, on a channel whose descriptor is not exposed).
public struct UCred: Sendable {
    public var pid: Int32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public init() {}
}
