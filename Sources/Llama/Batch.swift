import CLlama

/// One `llama_batch`: tokens with explicit positions, sequence ids and logits flags. Reused across
/// passes (`clear`) so the tick loop allocates nothing.
public final class Batch {
    var raw: llama_batch
    public let capacity: Int
    public let maxSequencesPerToken: Int

    public init(capacity: Int, maxSequencesPerToken: Int = 1) {
        precondition(capacity > 0 && maxSequencesPerToken > 0)
        raw = llama_batch_init(Int32(capacity), 0, Int32(maxSequencesPerToken))
        self.capacity = capacity
        self.maxSequencesPerToken = maxSequencesPerToken
    }

    deinit { llama_batch_free(raw) }

    public var count: Int { Int(raw.n_tokens) }
    public var isEmpty: Bool { raw.n_tokens == 0 }

    public func clear() { raw.n_tokens = 0 }

    /// Adds `token` at `position` to every sequence in `sequences` (a shared-prefix token is
    /// computed once for all of them). Returns its batch index, the handle for its logits.
    @discardableResult
    public func add(_ token: Token, position: Int32, sequences: [Int32], logits: Bool) throws -> Int {
        let i = Int(raw.n_tokens)
        guard i < capacity else { throw LlamaError.batchFull(capacity: capacity) }
        precondition(!sequences.isEmpty && sequences.count <= maxSequencesPerToken,
                     "a token needs 1...\(maxSequencesPerToken) sequence ids")
        raw.token[i] = token
        raw.pos[i] = position
        raw.n_seq_id[i] = Int32(sequences.count)
        for (k, s) in sequences.enumerated() { raw.seq_id[i]![k] = s }
        raw.logits[i] = logits ? 1 : 0
        raw.n_tokens += 1
        return i
    }

    @discardableResult
    public func add(_ token: Token, position: Int32, sequence: Int32, logits: Bool) throws -> Int {
        try add(token, position: position, sequences: [sequence], logits: logits)
    }
}
