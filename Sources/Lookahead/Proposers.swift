import Llama

/// Token-level proposals for a target branch: draft-step lookup first (the branch regenerating
/// step j proposes the draft's dⱼ, which exists anyway), else n-gram prompt lookup. When adaptive,
/// only as many tokens as the source's measured acceptance makes worth their cost in the pass.
struct TokenProposer {
    let ngramMax: Int
    let ngramMin: Int
    let adaptive: Bool
    private var estimates: [ProposalSource: AcceptanceEstimate] = [:]

    init(ngramMax: Int, ngramMin: Int, adaptive: Bool) {
        self.ngramMax = ngramMax
        self.ngramMin = ngramMin
        self.adaptive = adaptive
    }

    /// Up to `room` tokens to follow `text`, whose current step has `made` so far; `draftVersions`
    /// are the draft's versions of that step.
    mutating func propose(made: [Token], text: [Token], draftVersions: [[Token]], room: Int,
                          costs: EngineCosts) -> ([Token], ProposalSource?) {
        var found: [Token] = [], source: ProposalSource?
        for tokens in draftVersions where tokens.count > made.count && Array(tokens.prefix(made.count)) == made {
            found = Array(tokens[made.count..<min(tokens.count, made.count + room)])
            source = .draftStep
            break
        }
        if source == nil, let match = ngramLookup(text, room: room) {
            (found, source) = (match.tokens, .ngram(match.size))
        }
        guard let source, adaptive else { return (found, source) }
        estimates[source, default: AcceptanceEstimate()].forget()
        let k = ProposalPolicy.worthwhile(available: found.count, rate: estimates[source]!.rate, costs: costs)
        return k == 0 ? ([], nil) : (Array(found.prefix(k)), source)
    }

    /// A pass took the first `accepted` of `proposed` tokens from `source`.
    mutating func record(_ source: ProposalSource, proposed: Int, accepted: Int) {
        estimates[source, default: AcceptanceEstimate()].record(proposed: proposed, accepted: accepted)
    }

    /// The tokens that followed the latest earlier occurrence of the text's longest suffix
    /// (ngramMax … ngramMin tokens), and that suffix's length.
    func ngramLookup(_ text: [Token], room: Int) -> (tokens: [Token], size: Int)? {
        let n = text.count
        for size in stride(from: ngramMax, through: max(1, ngramMin), by: -1) where n > size {
            let suffix = text[(n - size)...]
            var start = n - size - 1
            while start >= 0 {
                if text[start..<start + size].elementsEqual(suffix) {
                    let from = start + size
                    return (Array(text[from..<min(n, from + room)]), size)
                }
                start -= 1
            }
        }
        return nil
    }
}
