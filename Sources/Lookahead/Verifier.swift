import Llama
#if canImport(Glibc)
import Glibc
#endif

/// One comparison: the target's own step and the draft's candidate for the same position.
public struct StepPair: Sendable, Equatable {
    public var target: String
    public var draft: String
    public init(target: String, draft: String) { self.target = target; self.draft = draft }
}

/// Decides whether draft steps say the same as the target's. Batched: one call per verify pass,
/// all sessions' pairs together.
public protocol StepVerifier: AnyObject {
    func verify(_ pairs: [StepPair]) throws -> [Bool]
}

/// How a chain's first, model-free stage compares two steps. An accepted draft step is committed
/// as the draft wrote it, so only byte equality leaves the target's text unchanged.
public enum TextMatch: Sendable, Hashable {
    /// The same bytes: the `exact` verifier, lossless with greedy decoding.
    case bytes
    /// Equal after folding case and dropping whitespace: `normalized`, and the cheap accept
    /// tried before a semantic verifier.
    case folded

    public func same(_ a: String, _ b: String) -> Bool {
        switch self {
        case .bytes: return a.utf8.elementsEqual(b.utf8)
        case .folded: return a == b || Self.fold(a) == Self.fold(b)
        }
    }

    public static func fold(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { !$0.properties.isWhitespace })
    }
}

/// Two steps whose numbers differ are different steps, however alike they read: MiniLM scored
/// `… = 360` against `… = 260` at 0.989 here. Numbers are compared as multisets of values, so
/// "3 × 4 = 12" and "12 is 4 times 3" agree while "8000 × 1.012 = 8160" and "… = 8096" do not.
public enum NumericGuard {
    public static func numbers(in text: String) -> [Double] {
        var out: [Double] = []
        var current = ""
        func flush() {
            var s = current
            current = ""
            while s.hasSuffix(".") || s.hasSuffix(",") { s.removeLast() }
            s.removeAll { $0 == "," }
            if let v = Double(s) { out.append(v) }
        }
        for ch in text {
            if ch.isASCII, ch.isNumber {
                current.append(ch)
            } else if (ch == "." || ch == ","), !current.isEmpty {
                current.append(ch)
            } else if !current.isEmpty {
                flush()
            }
        }
        if !current.isEmpty { flush() }
        return out.sorted()
    }

    /// True when the steps carry the same numbers.
    public static func agree(_ a: String, _ b: String) -> Bool {
        let x = numbers(in: a), y = numbers(in: b)
        guard x.count == y.count else { return false }
        return zip(x, y).allSatisfy { abs($0 - $1) <= 1e-9 * max(1, abs($0)) }
    }
}

/// Cosine similarity of MiniLM sentence embeddings (llama.cpp embeddings, one batch per pass).
public final class EmbeddingVerifier: StepVerifier {
    public let threshold: Float
    private let context: Context
    public private(set) var lastSimilarities: [Float] = []

    public init(model: Model, threshold: Float = 0.95, threads: Int) throws {
        self.threshold = threshold
        // An encoder: a pass holds whole sequences, so one batch is at most the trained context.
        let window = min(model.trainedContext, 2048)
        context = try Context(model: model, params: ContextParams(
            contextLength: window, batchSize: window, sequences: 16, threads: threads, embeddings: true))
    }

    public func similarities(_ pairs: [StepPair]) throws -> [Float] {
        let vectors = try context.embed(pairs.flatMap { [$0.target, $0.draft] })
        return pairs.indices.map { cosine(vectors[2 * $0], vectors[2 * $0 + 1]) }
    }

    public func verify(_ pairs: [StepPair]) throws -> [Bool] {
        guard !pairs.isEmpty else { return [] }
        lastSimilarities = try similarities(pairs)
        return lastSimilarities.map { $0 >= threshold }
    }
}

/// An LLM judge: our own prompt asks whether two reasoning steps mean the same, numbers included;
/// one prefill per pair (all pairs in one batch), then the logits of the "yes" and "no" answer
/// tokens decide. The judge may be its own GGUF or reuse the draft or target weights (a separate
/// context over the same `Model`).
public final class JudgeVerifier: StepVerifier {
    private let context: Context
    private let yes: Token
    private let no: Token
    private let maxPairs: Int
    /// How far the "yes" logit must lead the "no" logit: unsure is "no", as in the reference.
    public let margin: Float
    /// yes − no logit of each pair of the last call.
    public private(set) var lastMargins: [Float] = []

    public init(model: Model, threads: Int, maxPairs: Int = 8, margin: Float = 1) throws {
        self.maxPairs = maxPairs
        self.margin = margin
        context = try Context(model: model, params: ContextParams(
            contextLength: min(model.trainedContext, 4096), batchSize: 4096, sequences: maxPairs, threads: threads))
        let vocab = model.vocab
        guard let y = try vocab.tokenize("yes").first, let n = try vocab.tokenize("no").first else {
            throw LlamaError.tokenizeFailed("judge answer tokens")
        }
        yes = y
        no = n
    }

    func prompt(_ pair: StepPair) throws -> String {
        let question = """
        Two reasoning steps were written for the same problem at the same point of a solution.
        Do they say the same thing about the same objects, with the same numbers and the same results? \
        A step about something else, different numbers or a different result means they are not the same. \
        Wording does not matter. If unsure, answer no.

        Step A:
        \(pair.target.trimmingWhitespace)

        Step B:
        \(pair.draft.trimmingWhitespace)

        Answer with one word: yes or no.
        """
        if context.model.chatTemplate != nil {
            return try context.model.applyChatTemplate([ChatMessage(role: "user", content: question)])
        }
        return question + "\nAnswer:"
    }

    public func verify(_ pairs: [StepPair]) throws -> [Bool] {
        var verdicts: [Bool] = []
        lastMargins.removeAll()
        var start = 0
        while start < pairs.count {
            let chunk = pairs[start..<min(pairs.count, start + maxPairs)]
            context.clear()
            let batch = Batch(capacity: context.params.batchSize)
            var answerRow: [Int] = []
            for (k, pair) in chunk.enumerated() {
                let tokens = try context.model.vocab.tokenize(try prompt(pair), addSpecial: true, parseSpecial: true)
                guard batch.count + tokens.count <= batch.capacity else {
                    throw LlamaError.batchFull(capacity: batch.capacity)
                }
                for (p, t) in tokens.enumerated() {
                    try batch.add(t, position: Int32(p), sequence: Int32(k), logits: p == tokens.count - 1)
                }
                answerRow.append(batch.count - 1)
            }
            try context.decode(batch)
            for row in answerRow {
                let row = try context.logits(at: row)
                lastMargins.append(row[Int(yes)] - row[Int(no)])
                verdicts.append(lastMargins[lastMargins.count - 1] > margin)
            }
            start += chunk.count
        }
        return verdicts
    }
}

extension String {
    public var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}

/// The paper's random-acceptance ablation: accepts each pair with a fixed probability from a seeded
/// stream, whatever the texts say. Benchmarks on synthetic (random-weight) models use it to set α,
/// so the measured speed-up can be read against the model's curve at a known acceptance.
public final class RandomVerifier: StepVerifier {
    public let acceptance: Double
    private var generator: SeededGenerator

    public init(acceptance: Double, seed: UInt64 = 0) {
        precondition((0...1).contains(acceptance), "acceptance must be in 0...1")
        self.acceptance = acceptance
        generator = SeededGenerator(seed: seed)
    }

    public func verify(_ pairs: [StepPair]) -> [Bool] {
        pairs.map { _ in Double(generator.next() >> 11) / Double(1 << 53) < acceptance }
    }
}

/// Counts for one verifier stage.
public struct VerifierCounts: Sendable, Equatable {
    public var calls = 0
    public var accepts = 0
    public var seconds = 0.0
}

/// How a pair was decided.
public enum StepVerdict: Sendable, Hashable {
    case exact, rejected, vetoed, semanticAccept, semanticReject
    public var accepted: Bool { self == .exact || self == .semanticAccept }
}

/// The verifier chain every comparison goes through: a text match first; then the numeric guard
/// vetoes pairs whose numbers differ; then the semantic verifier (embedding or judge), if any,
/// decides the rest in one batch. Without a semantic verifier it is the exact verifier alone.
public final class VerifierChain {
    public let semantic: StepVerifier?
    public let numericGuard: Bool
    public let match: TextMatch
    public private(set) var exact = VerifierCounts()
    public private(set) var semanticCounts = VerifierCounts()
    public private(set) var guardVetoes = 0

    public init(semantic: StepVerifier?, numericGuard: Bool = true, match: TextMatch = .folded) {
        self.semantic = semantic
        self.numericGuard = numericGuard
        self.match = match
    }

    /// Verdicts with the stage that decided each, so sessions can count their own.
    public func judge(_ pairs: [StepPair]) throws -> [StepVerdict] {
        let t0 = monotonicSeconds()
        var verdicts = pairs.map { match.same($0.target, $0.draft) ? StepVerdict.exact : .rejected }
        exact.calls += pairs.count
        exact.accepts += verdicts.filter(\.accepted).count
        exact.seconds += monotonicSeconds() - t0
        guard let semantic else { return verdicts }
        var undecided: [Int] = []
        for i in pairs.indices where !verdicts[i].accepted {
            if numericGuard, !NumericGuard.agree(pairs[i].target, pairs[i].draft) {
                guardVetoes += 1
                verdicts[i] = .vetoed
            } else {
                undecided.append(i)
            }
        }
        guard !undecided.isEmpty else { return verdicts }
        let t1 = monotonicSeconds()
        let semanticVerdicts = try semantic.verify(undecided.map { pairs[$0] })
        semanticCounts.seconds += monotonicSeconds() - t1
        semanticCounts.calls += undecided.count
        for (i, v) in zip(undecided, semanticVerdicts) {
            verdicts[i] = v ? .semanticAccept : .semanticReject
            if v { semanticCounts.accepts += 1 }
        }
        return verdicts
    }
}

public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
