import Llama

/// A target sequence regenerating one step: the root (from the committed text) or a branch opened
/// on a draft prefix P ⊕ d₁ … dⱼ. Its step starts at `base`.
final class Branch {
    var track: Track
    var base: Int
    var step = StepBuilder()
    /// Positions below this equal the parent's text (shareable in the same pass).
    let parent: Branch?
    let sharedUntil: Int

    init(track: Track, base: Int, parent: Branch?, sharedUntil: Int) {
        self.track = track
        self.base = base
        self.parent = parent
        self.sharedUntil = sharedUntil
    }
}

/// A finished draft step at one chain position and the target branch that continues from it.
struct Candidate {
    var step: Step
    /// The step in the target's tokens (its own tokens when the models share a vocabulary).
    var targetTokens: [Token]
    var branch: Branch?
    var verdict: Bool?
}

/// What a session publishes as it goes.
public enum SessionEvent: Sendable, Equatable {
    /// A committed step: its text, whether it is answer (after `</think>`) and whether the draft's
    /// version was accepted (false: the target's own step).
    case step(text: String, answer: Bool, fromDraft: Bool)
    case finished(FinishReason)
}

public enum FinishReason: String, Sendable, Equatable {
    case stop          // end of text
    case length        // max_tokens
    case context       // the context window is full
    case cancelled
}

/// One request, decoded with Lookahead Reasoning (Fu et al., 2025, the asynchronous variant):
///
///     loop
///       draft:   extend the chain d₁ … d_γ, one token per draft pass; each finished dⱼ opens a
///                target branch on P ⊕ d₁ … dⱼ
///       target:  every open branch regenerates its next step ŝ (plus token-level proposals)
///       verify:  V(ŝⱼ, dⱼ) for every pair whose two steps are finished
///       commit:  while ŝ₁ is done: accept d₁ if V says so (its branch becomes the root),
///                else commit ŝ₁ (the root continues) and drop the chain
///
/// The session is engine-agnostic and does no decoding itself: the batcher collects its tokens
/// into passes shared with other sessions and hands the results back.
public final class LookaheadSession {
    public let config: SessionConfig
    let draft: ModelEngine?
    let target: ModelEngine
    let promptCount: Int
    /// Set with a draft: how its steps reach the target and the target's steps reach it.
    private let crossing: StepCrossing?

    private(set) var committed: [Token]
    /// The committed text in the draft's tokens, from its own prompt: what the draft tracks rebase to.
    private var draftCommitted: [Token]
    private let draftPromptCount: Int
    private var lastCommittedEnd: StepEnd = .delimiter  // the prompt's end counts as a boundary
    private var answerPhase = false
    public private(set) var finishReason: FinishReason?
    public private(set) var stats = SessionStats()
    private var events: [SessionEvent] = []
    private var committedSteps: [Step] = []

    private var root: Branch
    private var chain: [[Candidate]] = []
    private var drafting: [StepBuilder]
    private var draftTracks: [Track]
    private var chainClosed = false
    private var freeTargetSeqs: [SeqID]
    /// Measured pass costs, as of the last plan: what the adaptive choices are made from.
    private var costs = EngineCosts()
    private var proposer: TokenProposer
    private var governor = DraftGovernor()

    /// `targetSeqs`/`draftSeqs`: the ids this session may use, empty in both contexts except for
    /// `cached`: the first `cached.target` prompt tokens are already in `targetSeqs[0]`'s cells and
    /// the first `cached.draft` of the draft's prompt in those of the first `width` draft ids (a
    /// prefix cache hit).
    public init(prompt: Prompt, config: SessionConfig, target: ModelEngine, draft: ModelEngine?,
                targetSeqs: [SeqID], draftSeqs: [SeqID], cached: (target: Int, draft: Int) = (0, 0)) throws {
        try config.validate()
        self.draft = config.mode.usesDraft ? draft : nil
        crossing = self.draft.map { StepCrossing(draft: $0.text, target: target.text) }
        let draftPrompt = self.draft.map { prompt.draftTokens(draft: $0.text, target: target.text) } ?? []
        guard !prompt.target.isEmpty, crossing == nil || !draftPrompt.isEmpty else { throw SessionError.emptyPrompt }
        let limit = target.contextLength - 1
        let longest = max(prompt.target.count, draftPrompt.count)
        guard longest < limit else { throw SessionError.promptTooLong(tokens: longest, limit: limit) }
        precondition(targetSeqs.count >= config.targetSequences, "session needs \(config.targetSequences) target sequences")
        precondition(!config.mode.usesDraft || (draft != nil && draftSeqs.count >= config.draftSequences),
                     "lookahead modes need a draft engine and \(config.draftSequences) draft sequences")
        self.config = config
        self.target = target
        promptCount = prompt.target.count
        committed = prompt.target
        draftCommitted = draftPrompt
        draftPromptCount = draftPrompt.count
        // The last prompt token is always fed: its pass gives the first distribution.
        precondition(cached.target < prompt.target.count && (cached.draft == 0 || cached.draft < draftPrompt.count),
                     "a cached prefix covers the whole prompt")
        root = Branch(track: Track(seq: targetSeqs[0], text: prompt.target, kv: cached.target), base: prompt.target.count,
                      parent: nil, sharedUntil: 0)
        freeTargetSeqs = Array(targetSeqs.dropFirst().prefix(config.targetSequences - 1))
        draftTracks = config.mode.usesDraft
            ? draftSeqs.prefix(config.width).map { Track(seq: $0, text: draftPrompt, kv: cached.draft) } : []
        stats.promptTokens = prompt.target.count
        stats.cachedPromptTokens = cached.target
        drafting = Array(repeating: StepBuilder(), count: draftTracks.count)
        proposer = TokenProposer(ngramMax: config.ngramMax, ngramMin: config.ngramMin, adaptive: config.adaptive)
    }

    public var isFinished: Bool { finishReason != nil }
    public var generatedTokens: [Token] { Array(committed[promptCount...]) }
    public var steps: [Step] { committedSteps }

    /// Events since the last call.
    public func takeEvents() -> [SessionEvent] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    // MARK: Draft pass

    /// The draft's committed text may run longer than the target's (another vocabulary): past the
    /// request's budget in its own tokens, which is what its KV share covers, it stops drafting.
    private var drafts: Bool {
        draft != nil && governor.speculating && !isFinished && !answerPhase && !chainClosed && chain.count < gamma
            && draftCommitted.count - draftPromptCount < config.maxTokens
    }

    /// γ in use: the configured depth, capped at ⌈1/c⌉ (c per token, measured) when adaptive —
    /// the asynchronous pipeline gains nothing deeper (the paper's Lemma 2).
    var gamma: Int {
        guard config.adaptive, let c = costs.draftRatio else { return config.gamma }
        return min(config.gamma, SpeedupModel.gammaCap(c: c))
    }

    /// Adds this session's next draft token(s) to draft pass number `round` of this tick.
    public func planDraft(into pass: inout PassBuilder, round: Int = 0, costs: EngineCosts = EngineCosts()) {
        self.costs = costs
        // While the target still prefills, a finished draft step would open a branch on a prompt
        // not yet in the target's cache: the draft waits for the last chunk.
        guard drafts, round < config.draftTokensPerTick, root.track.pending <= config.prefillChunk else { return }
        for w in draftTracks.indices where !drafting[w].isDone {
            if draftTracks[w].feedChunk(into: &pass, limit: config.prefillChunk) { continue }
            draftTracks[w].feed(into: &pass, output: config.sampling)
        }
    }

    public func absorbDraft(_ outputs: [TokenDistribution?]) {
        guard let draft else { return }
        var fed = false
        for w in draftTracks.indices where draftTracks[w].chunk > 0 {
            draftTracks[w].settleChunk()
            fed = true
        }
        for w in draftTracks.indices where draftTracks[w].firstRow >= 0 {
            fed = true
            guard let dist = outputs[draftTracks[w].firstRow] else { continue }
            let token = draw(from: dist, stream: 1 + UInt64(w), position: draftTracks[w].text.count)
            draftTracks[w].text.append(token)
            draftTracks[w].settle(acceptedProposals: 0, engine: draft)
            _ = drafting[w].append(token, rules: config.rules, text: draft.text)
            stats.draftTokens += 1
        }
        if fed { stats.draftPasses += 1 }
        if !drafting.isEmpty, drafting.allSatisfy(\.isDone) { closeChainPosition() }
    }

    /// All candidates of the frontier position are finished: record them, open their target
    /// branches, and start the next position from candidate A.
    private func closeChainPosition() {
        guard let crossing else { return }
        var candidates: [Candidate] = []
        for builder in drafting {
            let step = builder.step
            if candidates.contains(where: { $0.step.tokens == step.tokens }) { continue }
            candidates.append(Candidate(step: step, targetTokens: crossing.toTarget(step), branch: nil, verdict: nil))
        }
        let parent = chain.isEmpty ? root : chain[chain.count - 1][0].branch
        if let parent {
            for i in candidates.indices where candidates[i].step.end != .endOfText {
                candidates[i].branch = openBranch(from: parent, with: candidates[i].targetTokens)
            }
        }
        chain.append(candidates)
        // Past a cut (unless the rules make cuts boundaries), an end of text or `</think>`, further
        // drafts could never be accepted.
        let a = candidates[0].step
        if !config.rules.isBoundary(a.end) || candidates[0].branch == nil { chainClosed = true }
        // Every track drafts the next position from candidate A's prefix.
        let next = draftTracks[0].text
        if let draft {
            for w in draftTracks.indices.dropFirst() {
                draftTracks[w].rebase(to: next, engine: draft)
                let have = draftTracks[w].kv, want = draftTracks[0].kv
                if have < want {
                    draft.copy(draftTracks[0].seq, to: draftTracks[w].seq, positions: Int32(have)..<Int32(want))
                    draftTracks[w].kv = want
                }
            }
        }
        drafting = Array(repeating: StepBuilder(), count: draftTracks.count)
    }

    /// A target branch on the parent's prefix plus `step`: it shares the parent's KV cells for the
    /// common prefix (no copy of data in the unified cache) and regenerates the step after `step`.
    private func openBranch(from parent: Branch, with step: [Token]) -> Branch? {
        guard let seq = freeTargetSeqs.popLast() else { return nil }
        let prefix = Array(parent.track.text[..<parent.base])
        let shared = parent.base + commonPrefix(parent.track.text[parent.base...], step)
        var track = Track(seq: seq, text: prefix + step)
        let copied = min(parent.track.kv, shared, track.text.count - 1)
        target.copy(parent.track.seq, to: seq, positions: 0..<Int32(copied))
        track.kv = copied
        return Branch(track: track, base: track.text.count, parent: parent, sharedUntil: shared)
    }

    // MARK: Target pass

    /// The branches still generating, root first, then the chain in order (candidate A first).
    private var liveBranches: [Branch] {
        var all = [root]
        for position in chain { for c in position { if let b = c.branch { all.append(b) } } }
        return all.filter { !$0.step.isDone }
    }

    public func planTarget(into pass: inout PassBuilder, costs: EngineCosts = EngineCosts()) {
        self.costs = costs
        guard !isFinished else { return }
        if root.track.feedChunk(into: &pass, limit: config.prefillChunk) { return }
        for branch in liveBranches {
            let (proposals, source) = propose(for: branch)
            let parentTrack = branch.parent.map(\.track)
            branch.track.feed(into: &pass, output: config.sampling, proposals: proposals, source: source,
                              parent: parentTrack, sharedUntil: branch.sharedUntil)
        }
    }

    /// The token for `position` of a sequence: greedy, or the distribution's draw at the uniform
    /// keyed by the request's seed, this stream and the position (never by what came before it).
    private func draw(from dist: TokenDistribution, stream: UInt64, position: Int) -> Token {
        config.sampling.isGreedy
            ? dist.mostLikely
            : dist.sample(u: SeededGenerator.unit(seed: config.sampling.seed, stream: stream, position: position))
    }

    public func absorbTarget(_ outputs: [TokenDistribution?]) {
        var fed = root.track.chunk > 0
        root.track.settleChunk()
        for branch in [root] + chain.flatMap({ $0.compactMap(\.branch) }) where branch.track.firstRow >= 0 {
            fed = true
            let proposals = branch.track.proposals
            var accepted = 0
            for i in 0...proposals.count {
                guard let dist = outputs[branch.track.row(i)] else { break }
                // A proposal is verified by drawing the token as plain decoding would and taking the
                // proposal iff they agree: exact for greedy, speculative sampling for temperature > 0.
                let token = draw(from: dist, stream: 0, position: branch.track.text.count)
                let tookProposal = i < proposals.count && token == proposals[i]
                branch.track.text.append(token)
                stats.targetTokens += 1
                if tookProposal { accepted += 1 }
                if branch.step.append(token, rules: config.rules, text: target.text) || !tookProposal { break }
            }
            // The root never writes past the request's budget: what it would add is cut at commit.
            if branch === root, committed.count - promptCount + branch.step.tokens.count >= config.maxTokens {
                branch.step.cut()
            }
            if let source = branch.track.source {
                stats.proposalRuns += proposals.isEmpty ? 0 : 1
                stats.proposed[source.proposer, default: 0] += proposals.count
                stats.acceptedProposals[source.proposer, default: 0] += accepted
                proposer.record(source, proposed: proposals.count, accepted: accepted)
            }
            branch.track.settle(acceptedProposals: accepted, engine: target)
        }
        if fed { stats.targetPasses += 1 }
    }

    // MARK: Token-level proposals

    /// The proposer's tokens for `branch`, never past the step cap or the request's budget.
    private func propose(for branch: Branch) -> ([Token], ProposalSource?) {
        guard config.mode.speculatesTokens, config.proposalTokens > 0 else { return ([], nil) }
        let room = min(config.proposalTokens, config.rules.maxTokens - branch.step.tokens.count - 1,
                       config.maxTokens - (committed.count - promptCount) - 1)
        guard room > 0 else { return ([], nil) }
        return proposer.propose(made: branch.step.tokens, text: branch.track.text, draftVersions: draftSources(for: branch),
                                room: room, costs: costs)
    }

    /// The draft's versions of the step `branch` is regenerating: the finished candidates at the
    /// next chain position, or the step still being drafted there.
    private func draftSources(for branch: Branch) -> [[Token]] {
        guard draft != nil else { return [] }
        let position: Int
        if branch === root {
            position = 0
        } else if let j = chain.firstIndex(where: { $0.first?.branch === branch }) {
            position = j + 1
        } else {
            return []
        }
        if position < chain.count { return chain[position].map(\.targetTokens) }
        if position == chain.count, let crossing { return drafting.map(crossing.toTarget) }
        return []
    }

    // MARK: Verify

    private struct PendingCheck { var position: Int; var candidate: Int }
    private var checks: [PendingCheck] = []

    /// Pairs ready for the verifier: positions whose target step and draft candidates are finished.
    /// Pairs that cannot match (cut by the cap, a prefix not at a step boundary, different endings)
    /// are rejected here without a verifier call.
    public func verificationRequests() -> [StepPair] {
        checks.removeAll()
        var pairs: [StepPair] = []
        for j in chain.indices {
            let targetBranch = j == 0 ? root : chain[j - 1][0].branch
            guard let targetBranch, targetBranch.step.isDone else { continue }
            let targetStep = targetBranch.step.step
            let prefixAtBoundary = config.rules.isBoundary(j == 0 ? lastCommittedEnd : chain[j - 1][0].step.end)
            for c in chain[j].indices where chain[j][c].verdict == nil {
                let draftStep = chain[j][c].step
                if !prefixAtBoundary || (targetStep.end == .cap && !config.rules.capIsBoundary)
                    || draftStep.end != targetStep.end {
                    chain[j][c].verdict = false
                    continue
                }
                if chain[j][c].targetTokens == targetStep.tokens {
                    chain[j][c].verdict = true
                    stats.identicalSteps += 1
                    continue
                }
                checks.append(PendingCheck(position: j, candidate: c))
                pairs.append(StepPair(target: targetStep.text, draft: draftStep.text))
            }
        }
        return pairs
    }

    public func applyVerdicts(_ verdicts: [StepVerdict]) {
        precondition(verdicts.count == checks.count)
        for (check, verdict) in zip(checks, verdicts) {
            chain[check.position][check.candidate].verdict = verdict.accepted
            stats.verdicts[verdict, default: 0] += 1
        }
        checks.removeAll()
    }

    // MARK: Commit

    /// Commits every step that is decided: accepted draft steps re-root onto their branch; the
    /// first rejection commits the target's own step and drops the chain.
    public func advance(ledger: inout SpeculationLedger) {
        let steps = stats.committedSteps, tokens = committed.count
        defer {
            if stats.committedSteps > steps {
                if draft != nil, governor.speculating { stats.draftedTokens += committed.count - tokens }
                governDrafting(&ledger)
            } else if stats.targetPasses > 0 {
                governor.begin(spentSeconds: spentSeconds, committedTokens: committed.count - promptCount, committedSteps: stats.committedSteps)
            }
        }
        while !isFinished, root.step.isDone {
            let targetStep = root.step.step
            // A draft step with the target's very text but other tokens (another vocabulary, or
            // another split of the same bytes) gives way to the target's own: its branch continues
            // from tokens the target would not have written, and the text is the same.
            if let position = chain.first, let c = position.firstIndex(where: {
                $0.verdict == true && ($0.targetTokens == targetStep.tokens || $0.step.text != targetStep.text)
            }) {
                stats.acceptedDraftSteps += 1
                acceptDraft(candidate: c)
            } else {
                if let position = chain.first, position.contains(where: { $0.verdict == true }) {
                    stats.sameTextOtherTokens += 1
                } else if let position = chain.first, position.allSatisfy({ $0.verdict == false }) {
                    stats.rejectedDraftSteps += 1
                } else if draft != nil {
                    stats.undraftedSteps += 1
                }
                commitTargetStep()
                return
            }
        }
    }

    private func acceptDraft(candidate c: Int) {
        let position = chain.removeFirst()
        let chosen = position[c]
        // An end-of-text step opens no branch: the session ends on the old root, whose cells the
        // prefix cache may keep.
        if chosen.branch != nil { release(root) }
        for (i, other) in position.enumerated() where i != c { if let b = other.branch { release(b) } }
        if c != 0 {
            // The deeper chain grew from candidate A; it cannot follow B.
            dropChain()
        }
        commit(Step(tokens: chosen.targetTokens, text: chosen.step.text, end: chosen.step.end), fromDraft: true)
        draftCommitted += chosen.step.tokens
        if let branch = chosen.branch {
            root = branch
        } else {
            // An end-of-text draft step has no continuation: the session is over.
            precondition(isFinished || answerPhase)
            if !isFinished { finish(.stop) }
        }
        if c != 0 || answerPhase { rebaseDraft() }
    }

    private func commitTargetStep() {
        let step = root.step.step
        dropChain()
        commit(step, fromDraft: false)
        if let crossing { draftCommitted += crossing.toDraft(step) }
        root.base = root.track.text.count
        root.step = StepBuilder()
        rebaseDraft()
    }

    private func commit(_ step: Step, fromDraft: Bool) {
        var tokens = step.tokens
        let room = config.maxTokens - (committed.count - promptCount)
        let truncated = tokens.count >= room
        if tokens.count > room { tokens.removeLast(tokens.count - room) }
        committed.append(contentsOf: tokens)
        let text = tokens.count == step.tokens.count ? step.text : target.text.detokenize(tokens)
        committedSteps.append(Step(tokens: tokens, text: text, end: step.end))
        events.append(.step(text: text, answer: answerPhase, fromDraft: fromDraft))
        stats.committedSteps += 1
        lastCommittedEnd = step.end
        if step.end == .thinkEnd, config.answerByTargetOnly { answerPhase = true; dropChain() }
        if step.end == .endOfText, tokens.count == step.tokens.count {
            finish(.stop)
        } else if truncated {
            finish(.length)
        } else if committed.count + config.rules.maxTokens + 2 >= target.contextLength {
            finish(.context)
        }
    }

    /// Seconds of model and verifier passes this session has been charged for.
    private var spentSeconds: Double { stats.draftSeconds + stats.targetSeconds + stats.verifySeconds }

    /// Switches the draft off for a while when it has been costing more than it saves, and back on
    /// to probe again (`DraftGovernor`).
    private func governDrafting(_ ledger: inout SpeculationLedger) {
        guard config.adaptive, draft != nil, !isFinished, !answerPhase else { return }
        guard governor.observe(spentSeconds: spentSeconds, committedTokens: committed.count - promptCount,
                               committedSteps: stats.committedSteps, costs: costs, ledger: &ledger) else { return }
        if governor.speculating {
            rebaseDraft()
        } else {
            stats.draftPauses += 1
            dropChain()
        }
    }

    /// Joins with the draft paused for `steps` (drafting has been losing on this machine); it is
    /// probed after that like any paused session.
    public func startWithDraftPaused(steps: Int) {
        guard config.adaptive, draft != nil, stats.committedSteps == 0 else { return }
        governor.pause(steps: steps)
        stats.draftPauses += 1
    }

    private func dropChain() {
        for position in chain { for c in position { if let b = c.branch { release(b) } } }
        chain.removeAll()
        chainClosed = false
        drafting = Array(repeating: StepBuilder(), count: draftTracks.count)
    }

    /// The draft restarts from the committed text, keeping its KV for the common prefix.
    private func rebaseDraft() {
        guard let draft else { return }
        for w in draftTracks.indices { draftTracks[w].rebase(to: draftCommitted, engine: draft) }
        drafting = Array(repeating: StepBuilder(), count: draftTracks.count)
    }

    private func release(_ branch: Branch) {
        target.remove(branch.track.seq, from: 0)
        branch.track.kv = 0
        freeTargetSeqs.append(branch.track.seq)
    }

    private func finish(_ reason: FinishReason) {
        guard finishReason == nil else { return }
        finishReason = reason
        events.append(.finished(reason))
    }

    public func recordDraftTime(_ s: Double) { stats.draftSeconds += s }
    public func recordTargetTime(_ s: Double) { stats.targetSeconds += s }
    public func recordVerifyTime(_ s: Double) { stats.verifySeconds += s }

    /// Stops the session at the next tick boundary (client gone, `cancel`, shutdown).
    public func cancel() { finish(.cancelled) }

    /// Ends the session as finished, at the next tick boundary: its text reached a stop string.
    public func stop() { finish(.stop) }

    /// Frees every sequence this session holds in both contexts; call once it is finished. With
    /// `keepingPrefixes`, the root's cells and the first draft track's stay, for the prefix cache:
    /// returned with the tokens they hold (the committed text, less the last token, which was never
    /// fed, plus what the root had settled of an unfinished step).
    @discardableResult
    public func releaseSequences(keepingPrefixes keep: Bool = false) -> KeptPrefixes {
        dropChain()
        var kept = KeptPrefixes()
        kept.target = Self.release(root.track, in: target, keeping: keep)
        if let draft {
            for (w, track) in draftTracks.enumerated() {
                let prefix = Self.release(track, in: draft, keeping: keep && w == 0)
                if w == 0 { kept.draft = prefix }
            }
        }
        return kept
    }

    /// Clears `track`'s cells, or only those past its settled tokens (a failed pass can leave some)
    /// when they are kept.
    private static func release(_ track: Track, in engine: ModelEngine, keeping: Bool) -> KeptPrefix? {
        guard keeping, track.kv > 0 else {
            engine.remove(track.seq, from: 0)
            return nil
        }
        engine.remove(track.seq, from: Int32(track.kv))
        return KeptPrefix(seq: track.seq, tokens: Array(track.text[..<track.kv]))
    }
}

/// A sequence a finished session leaves behind, and the tokens its cells hold at positions 0, 1, ….
public struct KeptPrefix: Sendable, Equatable {
    public var seq: SeqID
    public var tokens: [Token]
    public init(seq: SeqID, tokens: [Token]) {
        self.seq = seq
        self.tokens = tokens
    }
}

public struct KeptPrefixes: Sendable, Equatable {
    public var target: KeptPrefix?
    public var draft: KeptPrefix?
    public init(target: KeptPrefix? = nil, draft: KeptPrefix? = nil) {
        self.target = target
        self.draft = draft
    }
}

/// How many leading tokens `a` and `b` share.
public func commonPrefix(_ a: some Collection<Token>, _ b: some Collection<Token>) -> Int {
    zip(a, b).lazy.prefix { $0 == $1 }.count
}
