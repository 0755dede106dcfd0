import Llama

/// The tokens of one model pass, gathered from every session before a single decode.
public struct PassBuilder: Sendable {
    public private(set) var entries: [PassEntry] = []

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    mutating func add(_ token: Token, position: Int, sequence: SeqID, output: SamplingParams?) -> Int {
        entries.append(PassEntry(token: token, position: Int32(position), sequences: [sequence], output: output))
        return entries.count - 1
    }

    /// Lets `sequence` share entry `index` (the same token at the same position over the same
    /// prefix): the token is computed once for both — the shared tree of docs/architecture.md.
    mutating func share(_ index: Int, with sequence: SeqID, output: SamplingParams?) {
        entries[index].sequences.append(sequence)
        if let output { entries[index].output = output }
    }
}

/// A sequence in one context: the tokens it stands for and how many leading ones are in the KV
/// cache. The last token is kept out of the cache, so the next pass that feeds it yields the
/// distribution this sequence continues from.
struct Track: Sendable {
    var seq: SeqID
    var text: [Token]
    var kv: Int = 0

    /// Rows of the last pass: `firstRow` predicts `text[fedCount]`; proposal i's row predicts the
    /// token after it.
    var firstRow = -1
    var proposalRow = -1
    var fedCount = 0
    var proposals: [Token] = []
    var source: ProposalSource?
    /// Entry of this track's token at `kvBeforePass` when it fed its own contiguous run (−1 when
    /// it shared, so no child can share from it).
    var firstEntry = -1
    var kvBeforePass = 0
    /// Tokens the last pass fed as a chunk of a long prefill (no distribution asked).
    var chunk = 0

    var pending: Int { text.count - kv }

    /// When more than `limit` tokens are pending (a long prompt), feeds the next `limit` of them and
    /// asks for no distribution: the prompt enters the cache over several passes, each shared with
    /// the other sessions' tokens, instead of holding them all for one long pass. False (nothing
    /// fed) when the rest fits one pass; `settleChunk` after a pass that took a chunk.
    mutating func feedChunk(into pass: inout PassBuilder, limit: Int) -> Bool {
        guard pending > limit else { return false }
        for p in kv..<kv + limit { _ = pass.add(text[p], position: p, sequence: seq, output: nil) }
        chunk = limit
        return true
    }

    mutating func settleChunk() {
        kv += chunk
        chunk = 0
    }

    /// Adds the pending tokens (and proposals) to `pass`, asking for a distribution at the last
    /// text token and after each proposal. Positions below `sharedUntil` that `parent` fed in this
    /// same pass from the same KV start are shared with it instead of computed twice.
    mutating func feed(into pass: inout PassBuilder, output: SamplingParams, proposals: [Token] = [],
                       source: ProposalSource? = nil, parent: Track? = nil, sharedUntil: Int = 0) {
        kvBeforePass = kv
        fedCount = text.count
        self.proposals = proposals
        self.source = proposals.isEmpty ? nil : source
        var position = kv
        if let parent, parent.firstEntry >= 0, parent.kvBeforePass == kv {
            let end = min(sharedUntil, parent.fedCount, text.count)
            while position < end {
                let row = parent.firstEntry + (position - kv)
                let isLast = position == text.count - 1
                pass.share(row, with: seq, output: isLast ? output : nil)
                if isLast { firstRow = row }
                position += 1
            }
        }
        firstEntry = position == kv ? pass.count : -1
        for p in position..<text.count {
            let row = pass.add(text[p], position: p, sequence: seq, output: p == text.count - 1 ? output : nil)
            if p == text.count - 1 { firstRow = row }
        }
        proposalRow = pass.count
        for (i, t) in proposals.enumerated() {
            _ = pass.add(t, position: text.count + i, sequence: seq, output: output)
        }
    }

    /// Row of output `i`: 0 follows the last text token, i > 0 follows proposal i − 1.
    func row(_ i: Int) -> Int { i == 0 ? firstRow : proposalRow + i - 1 }

    /// After the pass: every fed token and accepted proposal is in the KV cache except the last
    /// token of `text`, which stays pending; cells of rejected proposals are dropped.
    mutating func settle(acceptedProposals: Int, engine: ModelEngine) {
        let valid = fedCount + acceptedProposals
        let keep = min(valid, text.count - 1)
        let written = fedCount + proposals.count
        if keep < written { engine.remove(seq, from: Int32(keep)) }
        kv = keep
        firstRow = -1
        firstEntry = -1
        proposals = []
        source = nil
    }

    /// Re-points the track at `newText` (a commit or a rollback): keeps the KV of the common prefix.
    mutating func rebase(to newText: [Token], engine: ModelEngine) {
        var common = 0
        let limit = min(kv, newText.count - 1, text.count)
        while common < limit, text[common] == newText[common] { common += 1 }
        if common < kv { engine.remove(seq, from: Int32(common)) }
        kv = common
        text = newText
    }
}

public enum Proposer: String, Sendable {
    case ngram
    case draftStep = "draft_step"
}
