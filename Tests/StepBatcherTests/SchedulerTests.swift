import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Llama
import Lookahead
import ScriptedEngines
import Synchronization
import Testing
@testable import StepBatcher

let script = ["we have 3 apples |", "then buy 5 more |", "so 3 + 5 = 8 |", "answer : 8 |", "done <eos>"]

/// Scripted target and draft behind a scheduler: every pass is checked against the KV cells each
/// sequence holds, so a batcher that hands two sessions one sequence, or frees cells it should
/// keep, fails the pass.
struct Rig {
    let words: WordText
    let target: ScriptedEngine
    let draft: ScriptedEngine
    let prompt: [Token]
    /// The prompt in the draft's tokens when `draftWords` gives it a vocabulary of its own.
    let draftPrompt: [Token]?
    let sequences: Int

    init(sequences: Int = 16, contextLength: Int = 4096, targetScript: [String] = script, draftScript: [String] = script,
         draftWords: WordText? = nil) {
        let words = WordText(), dw = draftWords ?? words
        let question = "question : what is it ? |"
        let prompt = words.tokens(question)
        draftPrompt = draftWords?.tokens(question)
        let t = targetScript.map { words.tokens($0) }, d = draftScript.map { dw.tokens($0) }
        target = ScriptedEngine(words: words, promptLength: prompt.count, contextLength: contextLength) { _ in t }
        draft = ScriptedEngine(words: dw, promptLength: (draftPrompt ?? prompt).count, contextLength: contextLength) { _ in d }
        self.words = words
        self.prompt = prompt
        self.sequences = sequences
    }

    /// The prompt as the scheduler takes it.
    var prompts: Prompt { Prompt(prompt, draft: draftPrompt) }

    func scheduler(_ limits: BatcherLimits = BatcherLimits(), prefixCacheCells: Int? = nil) -> Scheduler {
        Scheduler(engines: EngineSet(target: target, draft: draft, verifiers: [.exact: VerifierChain(semantic: nil, match: .bytes)],
                                     defaultVerifier: .exact, sequences: sequences), limits: limits, prefixCacheCells: prefixCacheCells)
    }

    func config(_ mode: Mode, maxTokens: Int = 64) -> SessionConfig {
        var c = SessionConfig(mode: mode)
        c.maxTokens = maxTokens
        c.adaptive = false
        return c
    }

    var expectedText: String { script.map { words.detokenize(words.tokens($0)) }.joined() }
}

/// What a sink heard, in order.
final class Heard: Sendable {
    private let updates = Mutex<[SessionUpdate]>([])
    private let done = DispatchSemaphore(value: 0)

    var sink: @Sendable (SessionUpdate) -> Void {
        { update in
            self.updates.withLock { $0.append(update) }
            switch update {
            case .finished, .failed: self.done.signal()
            case .started, .step: break
            }
        }
    }

    var all: [SessionUpdate] { updates.withLock { $0 } }
    var started: Bool { all.contains { if case .started = $0 { true } else { false } } }
    var generation: Generation? {
        for u in all { if case .finished(let g) = u { return g } }
        return nil
    }
    var failure: BatcherError? {
        for u in all { if case .failed(let e) = u { return e } }
        return nil
    }
    /// Waits for the final update; false after `seconds`.
    func wait(_ seconds: Double = 10) -> Bool { done.wait(timeout: .now() + seconds) == .success }
}

@Suite("Admission queue and room")
struct AdmissionTests {
    func request(_ priority: Priority, promptTokens: Int = 4, mode: Mode = .ar, owner: UInt32? = nil) -> BatcherRequest {
        var c = SessionConfig(mode: mode)
        c.maxTokens = 32
        return BatcherRequest(prompt: Prompt(Array(repeating: 5, count: promptTokens)), config: c, priority: priority, owner: owner) { _ in }
    }

    @Test func ownersTakeTurnsSoOneUsersFloodDoesNotStarveAnother() {
        var queue = AdmissionQueue()
        let flood = (0..<1000).map { _ in Ticket.next() }
        for t in flood { queue.insert(t, request(.interactive, owner: 1000)) }
        let one = Ticket.next(), other = Ticket.next()
        queue.insert(one, request(.interactive, owner: 1001))
        queue.insert(other, request(.interactive, owner: 1002))
        var space = room(sessions: 5)
        #expect(queue.admit(into: &space).map(\.ticket) == [flood[0], one, other, flood[1], flood[2]])
        #expect(queue.count == 997 && queue.interactiveCount == 997)
    }

    @Test func cancellingFromAFloodKeepsTheQueueSmallAndItsOrder() {
        var queue = AdmissionQueue()
        let tickets = (0..<100_000).map { _ in Ticket.next() }
        for t in tickets { queue.insert(t, request(.interactive, owner: 7)) }
        let kept = Set([tickets[5], tickets[99_999]])
        #expect(queue.remove(Set(tickets).subtracting(kept)).count == 99_998)
        #expect(queue.count == 2 && queue.heldTickets <= 2 * 2 + 17)
        var space = room()
        #expect(queue.admit(into: &space).map(\.ticket) == [tickets[5], tickets[99_999]])
        #expect(queue.isEmpty && queue.heldTickets == 0)
    }

    @Test func aFullInteractiveQueueRefusesAsksButNotBatchLines() throws {
        let rig = Rig()
        let batcher = Batcher(scheduler: rig.scheduler(BatcherLimits(maxQueued: 2)))
        for _ in 0..<2 { _ = try batcher.submit(request(.interactive)) }
        #expect(throws: BatcherError.self) { try batcher.submit(request(.interactive)) }
        _ = try batcher.submit(request(.batch))
        #expect(batcher.status.queuedInteractive == 0)   // figures are published by the engine thread
        batcher.shutdown(grace: 0)
    }

    func room(sessions: Int = 8, batch: Int = 8, sequences: Int = 64, kv: Int = 100_000) -> Room {
        Room(sessions: sessions, batchSessions: batch, targetSequences: sequences, draftSequences: sequences, kvCells: kv)
    }

    @Test func interactiveGoesBeforeBatchAndEachPriorityKeepsItsOrder() {
        var queue = AdmissionQueue()
        let tickets = (0..<5).map { _ in Ticket.next() }
        queue.insert(tickets[0], request(.batch))
        queue.insert(tickets[1], request(.interactive))
        queue.insert(tickets[2], request(.batch))
        queue.insert(tickets[3], request(.interactive))
        queue.insert(tickets[4], request(.batch))
        var space = room()
        #expect(queue.admit(into: &space).map(\.ticket) == [tickets[1], tickets[3], tickets[0], tickets[2], tickets[4]])
        #expect(queue.isEmpty)
    }

    @Test func theHeadThatDoesNotFitHoldsBackThoseBehindIt() {
        var queue = AdmissionQueue()
        let big = Ticket.next(), small = Ticket.next()
        queue.insert(big, request(.interactive, mode: .lookahead))   // 5 target sequences
        queue.insert(small, request(.interactive))                    // 1
        var space = room(sequences: 3)
        #expect(queue.admit(into: &space).isEmpty)
        #expect(queue.count == 2)
        var more = room(sequences: 6)
        #expect(queue.admit(into: &more).map(\.ticket) == [big, small])
        #expect(more.targetSequences == 0)
    }

    @Test func batchWorkStopsAtItsOwnLimitAndLeavesRoomForAsks() {
        var queue = AdmissionQueue()
        let batch = (0..<3).map { _ in Ticket.next() }
        for t in batch { queue.insert(t, request(.batch)) }
        var space = room(sessions: 4, batch: 2)
        #expect(queue.admit(into: &space).map(\.ticket) == Array(batch.prefix(2)))
        let ask = Ticket.next()
        queue.insert(ask, request(.interactive))
        #expect(queue.admit(into: &space).map(\.ticket) == [ask])
        #expect(space.sessions == 1 && space.batchSessions == 0)
    }

    @Test func kvCellsAreABudget() {
        let r = request(.interactive, promptTokens: 100)
        let cells = Capacity.kvCells(promptTokens: 100, config: r.config)
        var space = room(kv: 2 * cells + cells / 2)
        var queue = AdmissionQueue()
        for _ in 0..<3 { queue.insert(Ticket.next(), r) }
        #expect(queue.admit(into: &space).count == 2)
        #expect(space.kvCells == cells / 2)
    }

    @Test func cancelledTicketsLeaveTheQueue() {
        var queue = AdmissionQueue()
        let a = Ticket.next(), b = Ticket.next(), c = Ticket.next()
        for t in [a, b, c] { queue.insert(t, request(.interactive)) }
        #expect(queue.remove([b, Ticket.next()]).count == 1)
        var space = room()
        #expect(queue.admit(into: &space).map(\.ticket) == [a, c])
    }
}

@Suite("Scheduler on scripted engines")
struct SchedulerTests {
    @Test func sessionsShareEveryTargetPassAndEachWritesTheScript() throws {
        let rig = Rig()
        let scheduler = rig.scheduler()
        let heard = [Heard(), Heard(), Heard()]
        for (i, h) in heard.enumerated() {
            scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(i == 1 ? .lookahead : .ar), priority: .interactive,
                            sink: h.sink)
        }
        #expect(scheduler.liveSessions == 3)
        #expect(scheduler.targetSequencesUsed == 1 + 5 + 1)
        var ticks = 0
        while !scheduler.isIdle, ticks < 200 {
            scheduler.tick()
            ticks += 1
        }
        for h in heard { #expect(h.generation?.text == rig.expectedText) }
        // The first passes carry all three prompts: one pass for everyone, not one each.
        let firstSequences = Set(rig.target.passes[0].flatMap(\.sequences))
        #expect(firstSequences.count >= 3)
        #expect(scheduler.figures.sharedTargetPasses > 0)
        #expect(scheduler.figures.maxSessionsInTargetPass == 3)
        #expect(scheduler.figures.finished == 3)
        // Everything is given back: sequence ids, KV cells in both models, the KV budget.
        #expect(scheduler.targetSequencesUsed == 0 && scheduler.draftSequencesUsed == 0 && scheduler.kvCellsReserved == 0)
        #expect(rig.target.liveSequences.isEmpty && rig.draft.liveSequences.isEmpty)
    }

    @Test func aLongPromptGoesInByChunksWhileOthersKeepDecoding() throws {
        let rig = Rig()
        let scheduler = rig.scheduler()
        let running = Heard(), chunked = Heard()
        scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .interactive, sink: running.sink)
        scheduler.tick()
        let runningSeq = try #require(rig.target.passes.last?.first?.sequences.first)
        var config = rig.config(.lookahead)
        config.prefillChunk = 3
        let targetBefore = rig.target.passes.count, draftBefore = rig.draft.passes.count
        scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: config, priority: .interactive, sink: chunked.sink)
        while !scheduler.isIdle { scheduler.tick() }
        #expect(running.generation?.text == rig.expectedText && chunked.generation?.text == rig.expectedText)
        // The 7-token prompt goes in as 3 + 3 and then its last token, which gives the first
        // distribution; the running session decodes a token in each of those passes.
        for (i, pass) in rig.target.passes[targetBefore..<targetBefore + 3].enumerated() {
            #expect(pass.contains { $0.sequences == [runningSeq] }, "pass \(i) left the running session out")
            #expect(pass.filter { $0.sequences != [runningSeq] }.map(\.position) == [[0, 1, 2], [3, 4, 5], [6]][i])
        }
        // The draft waits for the target's last chunk (a finished draft step opens a branch on the
        // prompt), then goes in by chunks of its own.
        let draftPasses = rig.draft.passes[draftBefore...].prefix(3).map { $0.map(\.position) }
        #expect(draftPasses == [[0, 1, 2], [3, 4, 5], [6]])
        #expect(rig.target.liveSequences.isEmpty && rig.draft.liveSequences.isEmpty)
    }

    @Test func noSessionWaitsWhileAnotherIsServed() {
        let rig = Rig()
        let scheduler = rig.scheduler()
        let a = Heard(), b = Heard()
        scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .batch, sink: a.sink)
        scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .interactive, sink: b.sink)
        // In plain decoding each session puts exactly its next token in every pass until it ends.
        while !scheduler.isIdle { scheduler.tick() }
        let perPass = rig.target.passes.map { Set($0.flatMap(\.sequences)).count }
        let generated = rig.expectedText.split(separator: " ").count
        #expect(perPass.prefix(generated).allSatisfy { $0 == 2 }, "\(perPass)")
    }

    @Test func cancellingFreesTheSessionsCellsAtOnceAndLeavesTheOthers() {
        let rig = Rig()
        let scheduler = rig.scheduler()
        let kept = Heard(), cancelled = Heard()
        let ticket = Ticket.next()
        scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(.lookahead), priority: .interactive, sink: kept.sink)
        scheduler.admit(ticket, prompt: Prompt(rig.prompt), config: rig.config(.lookahead), priority: .interactive, sink: cancelled.sink)
        for _ in 0..<4 { scheduler.tick() }
        let before = Set(rig.target.liveSequences)
        #expect(scheduler.cancel(ticket))
        #expect(!scheduler.cancel(ticket))
        #expect(cancelled.failure == .cancelled && cancelled.generation == nil)
        #expect(scheduler.liveSessions == 1 && scheduler.targetSequencesUsed == 5 && scheduler.draftSequencesUsed == 1)
        #expect(Set(rig.target.liveSequences).isSubset(of: before))
        while !scheduler.isIdle { scheduler.tick() }
        #expect(kept.generation?.text == rig.expectedText)
        #expect(scheduler.figures.cancelled == 1 && scheduler.figures.finished == 1)
        #expect(rig.target.liveSequences.isEmpty && rig.draft.liveSequences.isEmpty)
    }

    @Test func anEngineFailureFailsEveryLiveSessionAndFreesThem() {
        struct Boom: Error {}
        let rig = Rig()
        let scheduler = rig.scheduler()
        let heard = [Heard(), Heard()]
        for h in heard { scheduler.admit(Ticket.next(), prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .interactive, sink: h.sink) }
        scheduler.tick()
        rig.target.failNextPass = Boom()
        scheduler.tick()
        for h in heard {
            guard case .engine? = h.failure else { Issue.record("heard \(h.all)"); continue }
        }
        #expect(scheduler.isIdle && scheduler.figures.failed == 2 && scheduler.targetSequencesUsed == 0 && scheduler.kvCellsReserved == 0)
        // The engines stay usable: the next request runs as if nothing had happened.
        #expect((try? scheduler.generate(prompt: Prompt(rig.prompt), config: rig.config(.ar)).text) == rig.expectedText)
    }

    @Test func generateIsTheSchedulersPath() throws {
        let rig = Rig()
        let scheduler = rig.scheduler()
        var steps = 0
        let g = try scheduler.generate(prompt: Prompt(rig.prompt), config: rig.config(.lookaheadSD)) { update in
            if case .step = update { steps += 1 }
        }
        #expect(g.text == rig.expectedText && g.finishReason == .stop)
        #expect(steps == g.steps.count && steps == script.count)
        #expect(scheduler.figures.finished == 1 && scheduler.isIdle)
        #expect(rig.target.liveSequences.isEmpty && rig.draft.liveSequences.isEmpty)
    }

    @Test func requestsThatCanNeverFitAreRefusedWithTheReason() {
        let rig = Rig(sequences: 4, contextLength: 300)
        let scheduler = rig.scheduler()
        #expect(throws: BatcherError.self) { try scheduler.capacity.check(promptTokens: 6, config: rig.config(.lookahead)) }
        #expect(throws: BatcherError.self) { try scheduler.capacity.check(promptTokens: 6, config: rig.config(.ar, maxTokens: 200)) }
        var judged = rig.config(.ar)
        judged.verifier = .judge
        do {
            try scheduler.capacity.check(promptTokens: 6, config: judged)
            Issue.record("a verifier that is not loaded was accepted")
        } catch {
            #expect(error.description.contains("judge"))
        }
        #expect((try? scheduler.capacity.check(promptTokens: 6, config: rig.config(.ar))) != nil)
    }
}

@Suite("Batcher thread on scripted engines")
struct BatcherThreadTests {
    @Test func asksOvertakeQueuedBatchLines() {
        let rig = Rig()
        let batcher = Batcher(scheduler: rig.scheduler(BatcherLimits(maxSessions: 1, maxBatchSessions: 1)))
        let order = Mutex<[String]>([])
        func request(_ name: String, _ priority: Priority, _ heard: Heard) -> BatcherRequest {
            BatcherRequest(prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: priority, owner: nil) { update in
                if case .started = update { order.withLock { $0.append(name) } }
                heard.sink(update)
            }
        }
        // Queued before the engine thread runs, so admission alone decides the order.
        let heard = (0..<4).map { _ in Heard() }
        _ = try? batcher.submit(request("batch1", .batch, heard[0]))
        _ = try? batcher.submit(request("batch2", .batch, heard[1]))
        _ = try? batcher.submit(request("ask1", .interactive, heard[2]))
        _ = try? batcher.submit(request("ask2", .interactive, heard[3]))
        batcher.start()
        for h in heard { #expect(h.wait()) }
        #expect(order.withLock { $0 } == ["ask1", "ask2", "batch1", "batch2"])
        for h in heard { #expect(h.generation?.text == rig.expectedText) }
        batcher.shutdown(grace: 0)
        let s = batcher.status
        #expect(s.totals.finished == 4 && s.activeSessions == 0 && s.targetSequencesUsed == 0 && s.stopping)
    }

    @Test func aQueuedRequestCancelledNeverStarts() {
        let rig = Rig()
        let batcher = Batcher(scheduler: rig.scheduler(BatcherLimits(maxSessions: 1, maxBatchSessions: 1)))
        let running = Heard(), queued = Heard()
        let first = try? batcher.submit(BatcherRequest(prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .interactive, owner: nil, sink: running.sink))
        let second = try? batcher.submit(BatcherRequest(prompt: Prompt(rig.prompt), config: rig.config(.ar), priority: .interactive, owner: nil, sink: queued.sink))
        #expect(first != nil && second != nil)
        batcher.cancel(second!)
        batcher.start()
        #expect(running.wait() && queued.wait())
        #expect(queued.failure == .cancelled && !queued.started)
        #expect(running.generation?.text == rig.expectedText)
        batcher.shutdown(grace: 0)
    }

    @Test func shutdownRefusesNewWorkFailsTheQueueAndEndsLiveSessionsAfterTheGrace() throws {
        let long = (0..<400).map { "step \($0) |" }
        let rig = Rig(targetScript: long)
        // Slow enough passes that the session is still running when the grace runs out.
        rig.target.distribution = { _, _, _ in usleep(2000); return nil }
        let batcher = Batcher(scheduler: rig.scheduler(BatcherLimits(maxSessions: 1, maxBatchSessions: 1)))
        let live = Heard(), queued = Heard()
        var c = rig.config(.ar, maxTokens: 1200)
        c.rules.maxTokens = 4
        _ = try batcher.submit(BatcherRequest(prompt: Prompt(rig.prompt), config: c, priority: .interactive, owner: nil, sink: live.sink))
        _ = try batcher.submit(BatcherRequest(prompt: Prompt(rig.prompt), config: c, priority: .interactive, owner: nil, sink: queued.sink))
        batcher.start()
        while !live.started { usleep(1000) }
        batcher.shutdown(grace: 0.05)
        #expect(queued.failure == .shuttingDown && !queued.started)
        #expect(live.failure == .shuttingDown)
        #expect(throws: BatcherError.shuttingDown) {
            try batcher.submit(BatcherRequest(prompt: Prompt(rig.prompt), config: c, priority: .interactive, owner: nil) { _ in })
        }
        #expect(rig.target.liveSequences.isEmpty)
    }
}
