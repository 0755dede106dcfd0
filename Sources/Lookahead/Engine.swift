import Llama

public typealias SeqID = Int32

/// One token of a model pass: where it goes (position, the sequences that share it) and whether
/// its next-token distribution is wanted, under which sampling parameters.
public struct PassEntry: Sendable, Equatable {
    public var token: Token
    public var position: Int32
    public var sequences: [SeqID]
    public var output: SamplingParams?

    public init(token: Token, position: Int32, sequences: [SeqID], output: SamplingParams?) {
        self.token = token
        self.position = position
        self.sequences = sequences
        self.output = output
    }
}

/// What the algorithm needs from a model: decode one packed pass, and fork/trim sequences' KV.
/// The real implementation is `LlamaEngine`; unit tests drive the algorithm with a scripted one.
/// Called only from the engine thread.
public protocol ModelEngine: AnyObject {
    var text: TokenText { get }
    /// Decodes `entries` as one pass (split internally when over the batch size) and returns the
    /// next-token distribution for every entry that asked for one, aligned with `entries`.
    func decode(_ entries: [PassEntry]) throws -> [TokenDistribution?]
    /// `destination` gets `source`'s KV for positions in `positions`.
    func copy(_ source: SeqID, to destination: SeqID, positions: Range<Int32>)
    /// Drops `sequence`'s KV at positions ≥ `position`.
    func remove(_ sequence: SeqID, from position: Int32)
    /// KV cells one context holds for all sequences together.
    var contextLength: Int { get }
    /// The attention window of sliding-window layers, 0 without any: their cache may give a cell
    /// that fell out of its sequence's window to another sequence.
    var slidingWindow: Int { get }
}

/// Token ↔ text knowledge the algorithm needs for step boundaries and verification, and for
/// steps that cross between models of different vocabularies.
public protocol TokenText: AnyObject {
    func pieceBytes(_ token: Token) -> [UInt8]
    func isEndOfGeneration(_ token: Token) -> Bool
    func detokenize(_ tokens: [Token]) -> String
    /// The tokens of plain text (no BOS, control-token names taken as text).
    func tokenize(_ text: String) -> [Token]
    /// The token a finished answer ends with.
    var endOfTurn: Token { get }
    /// Equal for two vocabularies exactly when they give every token id the same meaning.
    var fingerprint: UInt64 { get }
}

extension TokenText {
    /// Whether token ids mean the same to both: then steps may pass between them as ids.
    public func sharesVocabulary(with other: TokenText) -> Bool { self === other || fingerprint == other.fingerprint }
}

final class VocabText: TokenText {
    let vocab: Vocab
    /// Read every token's bytes once, when first asked (a pair is loaded): not for a target alone.
    lazy var fingerprint: UInt64 = vocab.fingerprint()
    /// Pieces are looked up once per token id: the step splitter asks for every generated token.
    private var cache: [Token: [UInt8]] = [:]
    init(_ vocab: Vocab) { self.vocab = vocab }
    func pieceBytes(_ token: Token) -> [UInt8] {
        if let p = cache[token] { return p }
        let p = vocab.pieceBytes(token)
        cache[token] = p
        return p
    }
    func isEndOfGeneration(_ token: Token) -> Bool { vocab.isEndOfGeneration(token) }
    func detokenize(_ tokens: [Token]) -> String { vocab.detokenize(tokens) }
    func tokenize(_ text: String) -> [Token] {
        // Only a text of over 2³¹ tokens throws: a step is at most a few hundred.
        (try? vocab.tokenize(text, addSpecial: false, parseSpecial: false)) ?? []
    }
    var endOfTurn: Token { vocab.endOfTurn }
}

/// `ModelEngine` over a llama context: every pass is one explicit `llama_batch` (split at n_batch),
/// every sequence id and KV range is the caller's.
public final class LlamaEngine: ModelEngine {
    public let context: Context
    public let text: TokenText
    private let batch: Batch
    /// Called after every decoded chunk: a long prefill still lets the watchdog hear the engine.
    public var afterChunk: () -> Void = {}
    /// The `rpc-server`s holding some of its layers: a lost connection fails the pass.
    private let servers: [String]

    public init(context: Context) {
        self.context = context
        text = VocabText(context.model.vocab)
        batch = Batch(capacity: context.params.batchSize, maxSequencesPerToken: context.params.sequences)
        servers = context.model.devices.compactMap(\.endpoint)
    }

    public var contextLength: Int { context.contextLength }
    public var slidingWindow: Int { context.model.slidingWindow }

    public func decode(_ entries: [PassEntry]) throws -> [TokenDistribution?] {
        var out = [TokenDistribution?](repeating: nil, count: entries.count)
        var start = 0
        while start < entries.count {
            let end = min(entries.count, start + batch.capacity)
            batch.clear()
            for e in entries[start..<end] {
                try batch.add(e.token, position: e.position, sequences: e.sequences, logits: e.output != nil)
            }
            do { try context.decode(batch) } catch { throw remoteFailure ?? error }
            // ggml's RPC client drops the commands of a lost connection: the pass's numbers are void.
            if let failure = remoteFailure { throw failure }
            afterChunk()
            for i in start..<end {
                if let params = entries[i].output {
                    out[i] = TokenDistribution(logits: try context.logits(at: i - start), params: params)
                }
            }
            start = end
        }
        return out
    }

    private var remoteFailure: LlamaError? {
        guard let endpoint = servers.first(where: RemoteDevices.hasFailed) else { return nil }
        return .rpcServer(endpoint: endpoint, reason: "the connection was lost; every pass of this model fails until the server is back and the models are reloaded")
    }

    public func copy(_ source: SeqID, to destination: SeqID, positions: Range<Int32>) {
        guard !positions.isEmpty else { return }
        context.copySequence(source, to: destination, positions: positions)
    }

    public func remove(_ sequence: SeqID, from position: Int32) {
        context.removeRange(sequence, from: position)
    }
}
