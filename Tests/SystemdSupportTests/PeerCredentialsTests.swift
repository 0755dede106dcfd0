import Testing
import SystemdSupport
import TestSupport
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
        let listening = try listeningUnixSocket()
        let listener = listening.fd
        let client = try connectUnixSocket(listening.path)
        let server = accept(listener, nil, nil)
        defer { close(listener); close(client); close(server); removeTree(listening.directory) }

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
