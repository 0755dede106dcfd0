import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

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
