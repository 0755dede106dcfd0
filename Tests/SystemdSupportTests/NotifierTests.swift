import Testing
import SystemdSupport
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

// sd_notify reads NOTIFY_SOCKET and WATCHDOG_* from the environment, so each test runs in its own
// process (an exit test): setenv here cannot race with other suites reading the environment.
@Suite struct NotifierTests {
    @Test func messagesArriveOnTheNotifySocketAsSystemdReadsThem() async {
        await #expect(processExitsWith: .success) {
            let manager = try NotifySocket()
            setenv("NOTIFY_SOCKET", manager.path, 1)
            #expect(Notifier.ready())
            #expect(manager.receive() == "READY=1")
            #expect(Notifier.status("3 queued, 41.2 tok/s"))
            #expect(manager.receive() == "STATUS=3 queued, 41.2 tok/s")
            #expect(Notifier.watchdog())
            #expect(manager.receive() == "WATCHDOG=1")
            #expect(Notifier.stopping())
            #expect(manager.receive() == "STOPPING=1")
        }
    }

    @Test func aStatusCannotSmuggleInAnotherAssignment() async {
        await #expect(processExitsWith: .success) {
            let manager = try NotifySocket()
            setenv("NOTIFY_SOCKET", manager.path, 1)
            #expect(Notifier.status("loading\nREADY=1"))
            #expect(manager.receive() == "STATUS=loading READY=1")
        }
    }

    @Test func reloadingCarriesTheMonotonicTimestampNotifyReloadNeeds() async {
        await #expect(processExitsWith: .success) {
            let manager = try NotifySocket()
            setenv("NOTIFY_SOCKET", manager.path, 1)
            #expect(Notifier.reloading())
            let lines = manager.receive()?.split(separator: "\n") ?? []
            #expect(lines.first == "RELOADING=1")
            let usec = lines.dropFirst().first.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) } ?? 0
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            #expect(usec > 0 && usec <= UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000)
        }
    }

    @Test func withoutNotifySocketEveryCallIsANoOp() async {
        await #expect(processExitsWith: .success) {
            unsetenv("NOTIFY_SOCKET")
            unsetenv("WATCHDOG_USEC")
            #expect(!Notifier.ready())
            #expect(!Notifier.status("idle"))
            #expect(!Notifier.watchdog())
            #expect(!Notifier.stopping())
            #expect(!Notifier.reloading())
            #expect(Notifier.watchdogInterval == nil)
        }
    }

    @Test func watchdogIntervalIsWatchdogSecForThisProcessOnly() async {
        await #expect(processExitsWith: .success) {
            setenv("WATCHDOG_USEC", "60000000", 1)
            setenv("WATCHDOG_PID", "\(getpid())", 1)
            #expect(Notifier.watchdogInterval == .seconds(60))
            // Inherited from a parent that is the one being watched: not ours to ping.
            setenv("WATCHDOG_PID", "\(getppid())", 1)
            #expect(Notifier.watchdogInterval == nil)
        }
    }
}
