import Lookahead
import LookaheadProtocol
import StepBatcher

extension AskResult {
    /// The wire result of a finished request: the daemon's `ask`, every batch line and `ask --local`.
    public init(_ g: Generation, mode: Mode, verifier: VerifierKind) {
        self.init(text: g.text, thinking: g.thinking, answer: g.answer, tokens: g.tokens.count,
                  promptTokens: g.stats.promptTokens, cachedTokens: g.stats.cachedPromptTokens, finishReason: g.finishReason.rawValue, mode: mode.rawValue, stats: AskStats(g.stats, verifier: verifier))
    }
}

extension AskStats {
    public init(_ s: SessionStats, verifier: VerifierKind) {
        self.init()
        committedSteps = s.committedSteps
        acceptedSteps = s.acceptedDraftSteps
        rejectedSteps = s.rejectedDraftSteps
        undraftedSteps = s.undraftedSteps
        identicalSteps = s.identicalSteps
        sameTextSteps = s.sameTextOtherTokens
        draftPauses = s.draftPauses
        draftedTokens = s.draftedTokens
        alpha = s.alpha
        c = s.costRatio
        draftPasses = s.draftPasses
        targetPasses = s.targetPasses
        draftSeconds = s.draftSeconds
        targetSeconds = s.targetSeconds
        verifySeconds = s.verifySeconds
        draftTokens = s.draftTokens
        targetTokens = s.targetTokens
        generatedTokens = s.generatedTokens
        wallSeconds = s.wallSeconds
        tokensPerSecond = s.tokensPerSecond
        ngram = Proposals(proposed: s.proposed[.ngram] ?? 0, accepted: s.acceptedProposals[.ngram] ?? 0)
        draftStep = Proposals(proposed: s.proposed[.draftStep] ?? 0, accepted: s.acceptedProposals[.draftStep] ?? 0)
        func count(_ v: StepVerdict) -> Int { s.verdicts[v] ?? 0 }
        self.verifier.name = verifier.rawValue
        self.verifier.exactAccepts = count(.exact)
        self.verifier.semanticCalls = count(.semanticAccept) + count(.semanticReject)
        self.verifier.semanticAccepts = count(.semanticAccept)
        self.verifier.guardVetoes = count(.vetoed)
    }
}
