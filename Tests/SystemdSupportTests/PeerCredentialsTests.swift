import Testing
import SystemdSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct PeerCredentialsTests {
    @Test func aSocketPairPeerIsThisProcess() throws {
        let (a, b) = try socketPair()
        defer { close(a); close(b) }
        #expect(PeerCredentials(socket: a) == PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
    }

    @Test func anAcceptedConnectionNamesTheConnectingProcess() throws {
        let listener = try listeningUnixSocket()
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        try withUnsafeMutablePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try check(getsockname(listener, $0, &length), "getsockname") }
        }
        let path = withUnsafeBytes(of: address.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try check(withUnixAddress(path) { connect(client, $0, $1) }, "connect")
        let server = accept(listener, nil, nil)
        defer { close(listener); close(client); close(server) }

        #expect(PeerCredentials(socket: server) == PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
    }

    @Test func noPeerNoCredentials() throws {
        let unconnected = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let pipe = try makePipe()
        defer { close(unconnected); close(pipe.read); close(pipe.write) }
        #expect(PeerCredentials(socket: unconnected) == nil)
        #expect(PeerCredentials(socket: pipe.read) == nil)
    }
}
