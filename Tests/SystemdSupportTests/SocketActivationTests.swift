import Testing
import SystemdSupport
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

// sd_listen_fds reads LISTEN_PID/LISTEN_FDS and takes fd 3 onward, both process-wide, so the activation
// tests run in their own process (an exit test) and recreate exactly what systemd and
// systemd-socket-activate hand over: the listening socket at fd 3, LISTEN_FDS=1, LISTEN_PID=<our pid>.
@Suite struct SocketActivationTests {
    @Test func theSocketSystemdPassesIsFoundAtFd3() async {
        await #expect(processExitsWith: .success) {
            let listener = try listeningUnixSocket().fd
            // The test harness has its own fd 3 in this process: park it while the socket stands there.
            let parked = fcntl(3, F_DUPFD_CLOEXEC, 10)
            dup2(listener, 3)
            setenv("LISTEN_PID", "\(getpid())", 1)
            setenv("LISTEN_FDS", "1", 1)
            let fds = try SocketActivation.listenFileDescriptors()
            let isListener = SocketActivation.isListeningUnixStreamSocket(3)
            let closeOnExec = fcntl(3, F_GETFD) & FD_CLOEXEC != 0
            let environmentCleared = getenv("LISTEN_FDS") == nil && getenv("LISTEN_PID") == nil
            let secondCall = try SocketActivation.listenFileDescriptors()
            if parked >= 0 { dup2(parked, 3) } else { close(3) }

            #expect(fds == [3])
            #expect(isListener)
            #expect(closeOnExec, "a passed socket must not leak into anything the daemon execs")
            #expect(environmentCleared)
            #expect(secondCall == [])
        }
    }

    @Test func withoutActivationThereAreNoSockets() async {
        await #expect(processExitsWith: .success) {
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_PID")
            let notActivated = try SocketActivation.listenFileDescriptors()
            // Sockets passed to the parent that started us are not ours.
            setenv("LISTEN_PID", "\(getppid())", 1)
            setenv("LISTEN_FDS", "1", 1)
            let parents = try SocketActivation.listenFileDescriptors()
            #expect(notActivated == [])
            #expect(parents == [])
        }
    }

    @Test func aMalformedHandOverIsAnErrorNotAnAbsence() async {
        await #expect(processExitsWith: .success) {
            setenv("LISTEN_PID", "\(getpid())", 1)
            setenv("LISTEN_FDS", "one", 1)
            #expect(throws: SystemdError.self) { try SocketActivation.listenFileDescriptors() }
        }
    }

    @Test func onlyAListeningUnixStreamSocketQualifies() throws {
        let listening = try listeningUnixSocket()
        let listener = listening.fd
        defer { removeTree(listening.directory) }
        let (a, b) = try socketPair()
        let datagram = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        let pipe = try makePipe()
        defer { [listener, a, b, datagram, pipe.read, pipe.write].forEach { close($0) } }

        #expect(SocketActivation.isListeningUnixStreamSocket(listener))
        #expect(!SocketActivation.isListeningUnixStreamSocket(a))
        #expect(!SocketActivation.isListeningUnixStreamSocket(datagram))
        #expect(!SocketActivation.isListeningUnixStreamSocket(pipe.read))
        #expect(!SocketActivation.isListeningUnixStreamSocket(-1))
    }
}
