import Llama

/// A request's prompt as each model reads it. A draft that shares the target's vocabulary reads
/// the target's tokens; one of another family reads its own, formatted with its own chat template.
public struct Prompt: Sendable, Equatable {
    public var target: [Token]
    /// nil: the target's tokens.
    public var draft: [Token]?

    public init(_ target: [Token], draft: [Token]? = nil) {
        self.target = target
        self.draft = draft
    }

    /// KV cells the longer of the two takes in its context.
    public var cells: Int { max(target.count, draft?.count ?? 0) }

    /// What `draft` reads: its own tokens when given; else the target's, for a draft of the same
    /// vocabulary, or the target's text tokenised, for one of another.
    public func draftTokens(draft: TokenText, target: TokenText) -> [Token] {
        if let tokens = self.draft { return tokens }
        return draft.sharesVocabulary(with: target) ? self.target : draft.tokenize(target.detokenize(self.target))
    }
}

/// How steps cross between the draft and the target. Models that share a vocabulary pass token
/// ids as they are; otherwise a step travels as its text and the receiving model tokenises it, as
/// the paper's draft and target servers exchange steps as strings, so any model can draft for any.
struct StepCrossing {
    let draft: TokenText
    let target: TokenText
    let sharesVocabulary: Bool

    init(draft: TokenText, target: TokenText) {
        self.draft = draft
        self.target = target
        sharesVocabulary = draft.sharesVocabulary(with: target)
    }

    /// A draft step (finished or not) in the target's tokens.
    func toTarget(_ step: Step) -> [Token] { carry(step, to: target) }

    /// A step the draft is still writing, in the target's tokens: what draft-step proposals offer.
    func toTarget(_ partial: StepBuilder) -> [Token] {
        sharesVocabulary ? partial.tokens : carry(partial.step, to: target)
    }

    /// A target step in the draft's tokens.
    func toDraft(_ step: Step) -> [Token] { carry(step, to: draft) }

    private func carry(_ step: Step, to side: TokenText) -> [Token] {
        guard !sharesVocabulary else { return step.tokens }
        // The end-of-text token has no text: the receiving side ends the step with its own.
        return side.tokenize(step.text) + (step.end == .endOfText ? [side.endOfTurn] : [])
    }
}
