import Foundation
import Lookahead
import StepBatcher
import TestSupport
import Testing

/// The thread governor's choices from CPU counters (scripted samples), the counters as read from
/// this machine, and the governor at work on the real target beside a busy process.
@Suite("Thread governor", .serialized)
struct ThreadGovernorTests {
    /// A sample `seconds` after `from` in which the machine was busy `machine` cores and we `own`.
    static func after(_ from: CPUSample, seconds: Double, machine: Double, own: Double) -> CPUSample {
        CPUSample(wall: from.wall + seconds, machineBusy: from.machineBusy + machine * seconds, own: from.own + own * seconds)
    }

    @Test func givesUpAThreadWhileOthersHoldACoreAndTakesItBackWhenTheyLeave() {
        var g = ThreadGovernor(maximum: 2, cores: 2)
        var s = CPUSample(wall: 0, machineBusy: 0, own: 0)
        #expect(g.observe(s) == nil && g.threads == 2)
        s = Self.after(s, seconds: 2, machine: 2, own: 1.4)    // others: 0.6 of a core
        #expect(g.observe(s) == 1)
        s = Self.after(s, seconds: 2, machine: 1.7, own: 1)    // others 0.7: stays down
        #expect(g.observe(s) == nil && g.threads == 1)
        s = Self.after(s, seconds: 2, machine: 1.3, own: 1)    // others 0.3: not room enough for a second thread yet
        #expect(g.observe(s) == nil && g.threads == 1)
        s = Self.after(s, seconds: 2, machine: 1.1, own: 1)    // others 0.1
        #expect(g.observe(s) == 2)
        s = Self.after(s, seconds: 2, machine: 2, own: 1.6)    // others 0.4: within the half-core slack
        #expect(g.observe(s) == nil && g.threads == 2)
        #expect(g.changes == 2)
    }

    @Test func neverExceedsTheConfiguredCountNorTheCores() {
        var roomy = ThreadGovernor(maximum: 2, cores: 16)
        var s = CPUSample(wall: 0, machineBusy: 0, own: 0)
        _ = roomy.observe(s)
        s = Self.after(s, seconds: 2, machine: 6, own: 2)       // others hold 4 of 16 cores
        #expect(roomy.observe(s) == nil && roomy.threads == 2)

        var crowded = ThreadGovernor(maximum: 4, cores: 2)
        s = CPUSample(wall: 0, machineBusy: 0, own: 0)
        _ = crowded.observe(s)
        s = Self.after(s, seconds: 2, machine: 2, own: 2)       // idle but for us: still only 2 cores
        #expect(crowded.observe(s) == 2)
        s = Self.after(s, seconds: 2, machine: 2, own: 2)
        #expect(crowded.observe(s) == nil && crowded.threads == 2)
    }

    @Test func looksOncePerInterval() {
        var g = ThreadGovernor(maximum: 2, cores: 2)
        #expect(g.isDue(at: 100))
        _ = g.observe(CPUSample(wall: 100, machineBusy: 0, own: 0))
        #expect(!g.isDue(at: 100 + ThreadGovernor.interval / 2))
        #expect(g.isDue(at: 100 + ThreadGovernor.interval))
    }

    /// Our own CPU time grows with work we do, and the machine's busy time with it.
    @Test func countersFollowTheWorkWeDo() throws {
        let before = try #require(CPUSample.read())
        var x = 0.0
        let start = monotonicSeconds()
        while monotonicSeconds() - start < 0.3 { x += sin(x + 1) }
        let after = try #require(CPUSample.read())
        #expect(x.isFinite)
        #expect(after.own - before.own > 0.2, "own \(after.own - before.own) s")
        // /proc/stat counts in clock ticks (10 ms): allow a few.
        #expect(after.machineBusy - before.machineBusy > after.own - before.own - 0.05,
                "machine \(after.machineBusy - before.machineBusy) s, own \(after.own - before.own) s")
    }

    /// On the real target: with processes spinning on all cores but one, the engine drops from its
    /// configured two threads to one while it decodes. Engines of its own, so it starts at two
    /// whatever earlier tests did to the shared ones.
    @Test func theEngineDropsAThreadBesideABusyProcess() throws {
        let engines = try RealModels.engines(verifier: "exact", loadDraft: false)
        let governor = engines.scheduler.threads
        try #require(governor.threads == 2 && governor.changes == 0, "a fresh engine starts at its two threads: \(governor)")
        let prompt = try GSM8K.prompt(GSM8K.problem(0))
        // Helpers die with this process, even if it crashes before `stop` (see TestSupport.launch).
        let spinners = try (1..<max(2, governor.cores)).map { _ in try BusyProcess() }
        defer { spinners.forEach { $0.stop() } }
        var config = SessionConfig(mode: .ar)
        config.maxTokens = 24
        let start = monotonicSeconds()
        // Long enough for two looks of the governor (and a few for a fully contended machine).
        while monotonicSeconds() - start < 3 * ThreadGovernor.interval, engines.scheduler.threads.threads > 1 {
            _ = try engines.generate(.text(prompt), config: config)
        }
        #expect(engines.scheduler.threads.threads == 1, "governor: \(engines.scheduler.threads)")
        #expect(engines.scheduler.threads.changes >= 1, "governor: \(engines.scheduler.threads)")
    }
}
