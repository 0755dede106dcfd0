import Llama
import Lookahead

/// What one tick carried: the batcher's pass figures.
public struct PassReport: Sendable, Equatable {
    public var draftPasses = 0
    /// Sessions with tokens in the target pass, and the tokens it carried.
    public var targetSessions = 0
    public var targetTokens = 0
}

/// Packs every live session's pending work into one draft pass, one target pass and one verify
/// pass per tick. Owns nothing but the engines' pass order; runs on the engine thread.
public final class TickRunner {
    public let target: ModelEngine
    public let draft: ModelEngine?
    /// Verifier chains by kind; each session uses its configured one or `defaultVerifier`.
    public let verifiers: [VerifierKind: VerifierChain]
    public let defaultVerifier: VerifierKind
    public private(set) var sessions: [LookaheadSession] = []
    /// Both models' measured pass costs: every session plans its speculation from them.
    public private(set) var costs = EngineCosts()
    /// What drafting has been earning across sessions: new sessions start paused while it loses.
    public private(set) var ledger = SpeculationLedger()
    /// Seconds, monotonic; tests substitute a simulated clock.
    private let clock: () -> Double

    public init(target: ModelEngine, draft: ModelEngine?, verifiers: [VerifierKind: VerifierChain], defaultVerifier: VerifierKind,
                clock: @escaping () -> Double = monotonicSeconds) {
        precondition(verifiers[defaultVerifier] != nil, "no verifier chain named \(defaultVerifier)")
        self.clock = clock
        self.target = target
        self.draft = draft
        self.verifiers = verifiers
        self.defaultVerifier = defaultVerifier
    }

    /// The chain a session asked for, or the default when it asked for none (the batcher refuses
    /// names that are not loaded before a session starts).
    public func chainName(for session: LookaheadSession) -> VerifierKind {
        session.config.verifier.flatMap { verifiers[$0] == nil ? nil : $0 } ?? defaultVerifier
    }

    public func add(_ session: LookaheadSession) {
        if ledger.losing { session.startWithDraftPaused(steps: ledger.backoff) }
        sessions.append(session)
    }

    /// Stops ticking a finished session; its sequences are the caller's to release.
    public func remove(_ session: LookaheadSession) {
        precondition(session.isFinished, "removed a session that is still running")
        sessions.removeAll { $0 === session }
    }

    /// One tick: draft pass, target pass, verify pass, commit.
    @discardableResult
    public func tick() throws -> PassReport {
        var report = PassReport()
        let live = sessions.filter { !$0.isFinished }

        // Draft passes until no session wants another this tick (each asks for its own rate).
        var round = 0
        while let draft, try decode(
            draft, live, cost: \.draft, plan: { s, pass in s.planDraft(into: &pass, round: round, costs: costs) },
            absorb: { s, out, seconds in s.absorbDraft(out); s.recordDraftTime(seconds) }) != nil {
            report.draftPasses += 1
            round += 1
        }

        if let carried = try decode(
            target, live, cost: \.target, plan: { s, pass in s.planTarget(into: &pass, costs: costs) },
            absorb: { s, out, seconds in s.absorbTarget(out); s.recordTargetTime(seconds) }) {
            report.targetSessions = carried.sessions
            report.targetTokens = carried.tokens
        }

        // One verify pass per chain in use, each batched across its sessions.
        let requests = live.map { $0.verificationRequests() }
        let names = live.map(chainName(for:))
        for (name, chain) in verifiers {
            let members = live.indices.filter { names[$0] == name }
            let pairs = members.flatMap { requests[$0] }
            guard !pairs.isEmpty else { continue }
            let t0 = clock()
            let verdicts = try chain.judge(pairs)
            let share = (clock() - t0) / Double(pairs.count)
            var offset = 0
            for i in members {
                let n = requests[i].count
                live[i].applyVerdicts(Array(verdicts[offset..<offset + n]))
                live[i].recordVerifyTime(share * Double(n))
                offset += n
            }
        }
        for (s, r) in zip(live, requests) where r.isEmpty { s.applyVerdicts([]) }

        for s in live { s.advance(ledger: &ledger) }
        return report
    }

    /// One pass of `engine` over what `plan` gathers from the live sessions, timed into the
    /// engine's cost fit; each session absorbs the outputs and is charged for the tokens it put in
    /// — its share of the cost it caused. Nil when no session had anything for the pass.
    private func decode(_ engine: ModelEngine, _ live: [LookaheadSession], cost: WritableKeyPath<EngineCosts, PassCost>,
                        plan: (LookaheadSession, inout PassBuilder) -> Void,
                        absorb: (LookaheadSession, [TokenDistribution?], Double) -> Void) throws -> (sessions: Int, tokens: Int)? {
        var pass = PassBuilder()
        var carried: [(session: LookaheadSession, tokens: Int)] = []
        for s in live {
            let before = pass.count
            plan(s, &pass)
            if pass.count > before { carried.append((s, pass.count - before)) }
        }
        guard !pass.isEmpty else { return nil }
        let t0 = clock()
        let out = try engine.decode(pass.entries)
        let seconds = clock() - t0
        costs[keyPath: cost].record(tokens: pass.count, seconds: seconds)
        for (s, n) in carried { absorb(s, out, seconds * Double(n) / Double(pass.count)) }
        return (carried.count, pass.count)
    }
}
