import Lookahead
import StepBatcher

/// JSON shapes of results shared by the daemon's replies (docs/protocol.md, `ask`).
public enum ResultEncoding {
    public static func stats(_ s: SessionStats, verifier: String) -> JSONValue {
        func proposer(_ p: Proposer) -> JSONValue {
            .object(["proposed": .int(Int64(s.proposed[p] ?? 0)), "accepted": .int(Int64(s.acceptedProposals[p] ?? 0))])
        }
        func count(_ v: StepVerdict) -> Int { s.verdicts[v] ?? 0 }
        return .object([
            "committed_steps": JSONValue(s.committedSteps), "accepted_steps": JSONValue(s.acceptedDraftSteps),
            "rejected_steps": JSONValue(s.rejectedDraftSteps), "undrafted_steps": JSONValue(s.undraftedSteps),
            "identical_steps": JSONValue(s.identicalSteps), "draft_pauses": JSONValue(s.draftPauses),
            "drafted_tokens": JSONValue(s.draftedTokens),
            "alpha": .double(s.alpha), "c": .double(s.costRatio),
            "draft_passes": JSONValue(s.draftPasses), "target_passes": JSONValue(s.targetPasses),
            "draft_seconds": .double(s.draftSeconds), "target_seconds": .double(s.targetSeconds),
            "verify_seconds": .double(s.verifySeconds), "draft_tokens": JSONValue(s.draftTokens),
            "target_tokens": JSONValue(s.targetTokens), "generated_tokens": JSONValue(s.generatedTokens),
            "wall_seconds": .double(s.wallSeconds), "tokens_per_second": .double(s.tokensPerSecond),
            "proposers": .object(["ngram": proposer(.ngram), "draft_step": proposer(.draftStep)]),
            "verifier": .object([
                "name": .string(verifier),
                "exact_accepts": JSONValue(count(.exact)),
                "semantic_calls": JSONValue(count(.semanticAccept) + count(.semanticReject)),
                "semantic_accepts": JSONValue(count(.semanticAccept)),
                "guard_vetoes": JSONValue(count(.vetoed)),
            ]),
        ])
    }

    public static func generation(_ g: Generation, mode: Mode, verifier: String) -> JSONValue {
        .object([
            "text": .string(g.text), "thinking": .string(thinking(of: g.text)), "answer": .string(g.answer),
            "tokens": JSONValue(g.tokens.count), "finish_reason": .string(g.finishReason.rawValue),
            "mode": .string(mode.rawValue), "stats": stats(g.stats, verifier: verifier),
        ])
    }

    /// The reasoning before `</think>` without the tags; empty when the model did not think.
    public static func thinking(of text: String) -> String {
        guard let end = text.range(ofBytes: "</think>") else { return "" }
        var inner = String(text[..<end.lowerBound])
        if let start = inner.range(ofBytes: "<think>") { inner = String(inner[start.upperBound...]) }
        return inner.trimmingWhitespace
    }
}

extension String {
    /// First occurrence of `needle`, without Foundation.
    func range(ofBytes needle: String) -> Range<String.Index>? {
        guard !needle.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
