import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, short enough for sun_path's 108 bytes.
func temporaryDirectory() throws -> String {
    var template = Array("/tmp/lookaheadd-test.XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    return String(cString: path)
}

func check(_ result: Int32, _ call: String) throws {
    if result < 0 { throw POSIXError(.init(rawValue: errno) ?? .EIO, userInfo: ["call": call]) }
}

/// Calls `body` with `path` as a sockaddr_un.
func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: path.utf8.prefix(raw.count - 1))
    }
    return try withUnsafePointer(to: &address) {
        try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

func unixSocket(_ type: __socket_type, boundTo path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(type.rawValue), 0)
    try check(fd, "socket")
    try check(withUnixAddress(path) { bind(fd, $0, $1) }, "bind")
    return fd
}

/// What systemd's end of NOTIFY_SOCKET sees: one datagram per sd_notify call.
struct NotifySocket {
    let path: String
    let fd: Int32

    init() throws {
        path = try temporaryDirectory() + "/notify"
        fd = try unixSocket(SOCK_DGRAM, boundTo: path)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        try check(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)), "setsockopt")
    }

    /// The next message, nil after 5 s without one.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }
}

/// Everything written to `fd` until every writer has closed it.
func readToEnd(_ fd: Int32) -> String {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n > 0 { data += buffer[..<n] } else if n < 0, errno == EINTR { continue } else { break }
    }
    return String(decoding: data, as: UTF8.self)
}

func listeningUnixSocket() throws -> Int32 {
    let fd = try unixSocket(SOCK_STREAM, boundTo: try temporaryDirectory() + "/listen.sock")
    try check(listen(fd, 4), "listen")
    return fd
}

func socketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    try check(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), "socketpair")
    return (fds[0], fds[1])
}

func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    try check(pipe(&fds), "pipe")
    return (fds[0], fds[1])
}
