import Dispatch
import Logging
import ServiceLifecycle
import StepBatcher
import SystemdSupport

/// The daemon's long-lived parts as swift-service-lifecycle services, in start order. The group
/// stops them in reverse: notify systemd, stop accepting, stop feeding batch lines, drain the
/// batcher (up to the grace), close the job store, close the connections. Each service's stop is
/// the code after its `gracefulShutdown()`, and nothing else stops anything.
public enum DaemonLifecycle {
    public static func services(network: Network, server: Server, http: HTTPServer?, batcher: Batcher, jobs: JobRunner,
                                grace: Double) -> [any Service] {
        [
            Stage("connections") { network.shutdown() },
            Stage("job store") { jobs.close() },
            Stage("batcher", start: batcher.start) { await offThePool { batcher.shutdown(grace: grace) } },
            Stage("job feeder", start: jobs.startFeeding) { jobs.stopFeeding() },
            Stage("listeners") {
                server.stopAccepting()
                http?.stopAccepting()
            },
            SystemdStatus(batcher: batcher),
        ]
    }
}

/// A part that starts, waits for the group's graceful shutdown (or cancellation), and stops.
struct Stage: Service, CustomStringConvertible {
    let description: String
    let start: @Sendable () -> Void
    let stop: @Sendable () async -> Void

    init(_ name: String, start: @escaping @Sendable () -> Void = {}, stop: @escaping @Sendable () async -> Void) {
        description = name
        self.start = start
        self.stop = stop
    }

    func run() async throws {
        start()
        try? await gracefulShutdown()
        await stop()
    }
}

/// Readiness, a STATUS= line every few seconds, and STOPPING=1 first when the group stops.
struct SystemdStatus: Service, CustomStringConvertible {
    let batcher: Batcher
    var description: String { "systemd status" }

    func run() async throws {
        Notifier.ready()
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: .seconds(5))
                let s = batcher.status
                Notifier.status("\(s.activeSessions) active, \(s.queuedInteractive + s.queuedBatch) queued, \(s.totals.generatedTokens) tokens generated")
            }
        }
        Notifier.stopping()
        Logger(label: "lookaheadd").notice("stopping")
    }
}

/// Blocking work (joining the engine thread) on a thread of its own, not Swift concurrency's pool.
func offThePool(_ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            body()
            done.resume()
        }
    }
}
