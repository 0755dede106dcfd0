import Foundation
import LookaheadProtocol
import Synchronization

/// Ctrl-C while a request is in flight: ask lookaheadd to cancel it, then exit with 130.
/// SIGINT is blocked and taken by a thread of its own with `sigwait`, so the cancel is sent from
/// ordinary code instead of a signal handler, and the main thread's blocking read is left alone.
final class Interruption: Sendable {
    private let caught = Atomic<Bool>(false)

    /// Whether Ctrl-C was pressed; from then on the process is exiting with 130.
    var happened: Bool { caught.load(ordering: .acquiring) }

    /// Call before any other thread exists: threads started earlier would still take SIGINT and die of it.
    init(cancelling request: Request, through client: Client) {
        var signals = Interruption.sigint
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        Thread.detachNewThread { [self] in
            var signals = Interruption.sigint
            var signal: Int32 = 0
            guard sigwait(&signals, &signal) == 0 else { return }
            caught.store(true, ordering: .releasing)
            // If the connection is gone there is nothing to cancel; the exit status says what happened.
            try? client.send(Request(id: client.makeID(), method: "cancel", params: ["id": request.id]))
            _exit(ExitStatus.interrupted.rawValue)
        }
    }

    private static var sigint: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        return set
    }
}
