import Llama
import Lookahead

/// What one tick carried: the batcher's pass report.
public struct PassReport: Sendable, Equatable {
    public var draftPasses = 0
    public var draftSessions = 0
    public var draftTokens = 0
    public var targetSessions = 0
    public var targetTokens = 0
    public var verifyPairs = 0
}

/// Packs every live session's pending work into one draft pass, one target pass and one verify
/// pass per tick. Owns nothing but the engines' pass order; runs on the engine thread.
public final class TickRunner {
    public let target: ModelEngine
    public let draft: ModelEngine?
    public let verifier: VerifierChain
    public private(set) var sessions: [LookaheadSession] = []
    public private(set) var lastReport = PassReport()
    /// Ticks whose target pass carried more than one session.
    public private(set) var sharedTargetPasses = 0
    public private(set) var ticks = 0

    public init(target: ModelEngine, draft: ModelEngine?, verifier: VerifierChain) {
        self.target = target
        self.draft = draft
        self.verifier = verifier
    }

    public func add(_ session: LookaheadSession) { sessions.append(session) }

    /// Removes finished sessions, freeing their sequences; returns them.
    @discardableResult
    public func reap() -> [LookaheadSession] {
        let done = sessions.filter(\.isFinished)
        for s in done { s.releaseSequences() }
        sessions.removeAll { $0.isFinished }
        return done
    }

    public var isIdle: Bool { sessions.allSatisfy(\.isFinished) }

    /// One tick: draft pass, target pass, verify pass, commit.
    public func tick() throws {
        var report = PassReport()
        let live = sessions.filter { !$0.isFinished }

        // Draft passes until no session wants another this tick (each asks for its own rate).
        var round = 0
        while let draft {
            var pass = PassBuilder()
            var carried: [LookaheadSession] = []
            for s in live {
                let before = pass.count
                s.planDraft(into: &pass, round: round)
                if pass.count > before { carried.append(s) }
            }
            if pass.isEmpty { break }
            let t0 = monotonicSeconds()
            let out = try draft.decode(pass.entries)
            let share = (monotonicSeconds() - t0) / Double(carried.count)
            for s in carried { s.absorbDraft(out); s.recordDraftTime(share) }
            report.draftSessions = max(report.draftSessions, carried.count)
            report.draftTokens += pass.count
            report.draftPasses += 1
            round += 1
        }

        var pass = PassBuilder()
        var carried: [LookaheadSession] = []
        for s in live {
            let before = pass.count
            s.planTarget(into: &pass)
            if pass.count > before { carried.append(s) }
        }
        if !pass.isEmpty {
            let t0 = monotonicSeconds()
            let out = try target.decode(pass.entries)
            let share = (monotonicSeconds() - t0) / Double(carried.count)
            for s in carried { s.absorbTarget(out); s.recordTargetTime(share) }
            report.targetSessions = carried.count
            report.targetTokens = pass.count
            if carried.count > 1 { sharedTargetPasses += 1 }
        }

        let requests = live.map { $0.verificationRequests() }
        let pairs = requests.flatMap { $0 }
        if !pairs.isEmpty {
            let t0 = monotonicSeconds()
            let verdicts = try verifier.verify(pairs)
            let share = (monotonicSeconds() - t0) / Double(pairs.count)
            var offset = 0
            for (s, r) in zip(live, requests) {
                s.applyVerdicts(Array(verdicts[offset..<offset + r.count]))
                s.recordVerifyTime(share * Double(r.count))
                offset += r.count
            }
            report.verifyPairs = pairs.count
        } else {
            for s in live { s.applyVerdicts([]) }
        }

        for s in live { s.advance() }
        lastReport = report
        ticks += 1
    }
}
