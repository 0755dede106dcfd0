import Llama
import Lookahead

/// Words as tokens: the scripted models speak a tiny vocabulary so tests read as text. A token is
/// a piece of text: " word", "\n\n" (the step delimiter), " </think>", or nothing (`<eos>`).
/// Vocabularies made with other settings give the same text other tokens: word ids from
/// `firstWordID`, and with `splitOver`, words longer than that in two tokens (" hea" + "d").
/// A script may split a word itself where a model writes an unusual split: "bu~y" is " bu" + "y".
public final class WordText: TokenText {
    public static let delimiter: Token = 1, eos: Token = 2, thinkEnd: Token = 3
    private let firstWordID: Token
    private let splitOver: Int?
    private var pieces: [Token: String] = [0: "<unused>", 1: "\n\n", 2: "", 3: " </think>"]
    private var ids: [String: Token] = [:]

    public init(firstWordID: Token = 4, splitOver: Int? = nil) {
        precondition(firstWordID > WordText.thinkEnd)
        self.firstWordID = firstWordID
        self.splitOver = splitOver
    }

    /// The token of exactly `text`.
    public func piece(_ text: String) -> Token {
        if let t = ids[text] { return t }
        let t = firstWordID + Token(ids.count)
        precondition(t < firstWordID + WordText.wordIDs, "the scripted vocabulary is full")
        ids[text] = t
        pieces[t] = text
        return t
    }

    /// The token of `word` where it is one token (the scripts' words are).
    public func id(_ word: String) -> Token { piece(" " + word) }

    /// "a b c |" → tokens; "|" is the step delimiter, "<eos>" and "</think>" the special ends.
    public func tokens(_ text: String) -> [Token] {
        text.split(separator: " ").flatMap { word -> [Token] in
            switch word {
            case "|": return [WordText.delimiter]
            case "<eos>": return [WordText.eos]
            default: return wordTokens(String(word))
            }
        }
    }

    private func wordTokens(_ word: String) -> [Token] {
        if word == "</think>" { return [WordText.thinkEnd] }
        if let cut = word.firstIndex(of: "~") {
            return [piece(" " + word[..<cut]), piece(String(word[word.index(after: cut)...]))]
        }
        guard let n = splitOver, word.count > n else { return [id(word)] }
        return [piece(" " + word.prefix(n)), piece(String(word.dropFirst(n)))]
    }

    public func tokenize(_ text: String) -> [Token] {
        var out: [Token] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.hasPrefix("\n\n") {
                out.append(WordText.delimiter)
                rest = rest.dropFirst(2)
                continue
            }
            let spaced = rest.hasPrefix(" ")
            let body = spaced ? rest.dropFirst() : rest
            let word = body.prefix { $0 != " " && $0 != "\n" }
            if word.isEmpty {
                out.append(piece(String(rest.prefix(1))))
                rest = rest.dropFirst()
                continue
            }
            out += spaced ? wordTokens(String(word)) : [piece(String(word))]
            rest = body.dropFirst(word.count)
        }
        return out
    }

    public func pieceBytes(_ token: Token) -> [UInt8] { Array((pieces[token] ?? "").utf8) }
    /// Whether `token` is an id of this vocabulary's settings (of any instance: tests hand tokens
    /// from one rig to another of the same kind).
    public func knows(_ token: Token) -> Bool {
        token <= WordText.thinkEnd || (firstWordID..<firstWordID + WordText.wordIDs).contains(token)
    }
    public static let wordIDs: Token = 1 << 24
    public func isEndOfGeneration(_ token: Token) -> Bool { token == WordText.eos }
    public func detokenize(_ tokens: [Token]) -> String { String(decoding: tokens.flatMap(pieceBytes), as: UTF8.self) }
    public var endOfTurn: Token { WordText.eos }
    public var fingerprint: UInt64 { UInt64(firstWordID) << 32 | UInt64(splitOver ?? 0) }
}

/// A model that writes a fixed script, step by step: after k complete steps of any content it
/// writes step k of its script, token by token. Every pass is checked against the KV cache it
/// keeps per sequence (a token must sit right after its sequence's last cell), and predictions are
/// made from the cache's contents, so bookkeeping mistakes in the session change the output.
public final class ScriptedEngine: ModelEngine {
    public let words: WordText
    public var text: TokenText { words }
    public let promptLength: Int
    /// The script for sequence `seq` (draft candidates can differ per sequence).
    public var script: (SeqID) -> [[Token]]
    /// Sampling: a distribution override for (sequence, step index, offset), else certain.
    public var distribution: ((SeqID, Int, Int) -> TokenDistribution?)?
    public private(set) var kv: [SeqID: [Token]] = [:]
    public private(set) var passes: [[PassEntry]] = []
    public let contextLength: Int
    public var slidingWindow = 0
    /// Simulated time: each pass advances `clock` by `passCost(tokens in the pass)`.
    public var clock: SimulatedClock?
    public var passCost: (Int) -> Double = { _ in 0 }
    /// Thrown by the next pass, once (an engine failure).
    public var failNextPass: Error?

    public init(words: WordText, promptLength: Int, contextLength: Int = 4096, script: @escaping (SeqID) -> [[Token]]) {
        self.words = words
        self.promptLength = promptLength
        self.contextLength = contextLength
        self.script = script
    }

    public func decode(_ entries: [PassEntry]) throws -> [TokenDistribution?] {
        if let failure = failNextPass {
            failNextPass = nil
            throw failure
        }
        passes.append(entries)
        clock?.now += passCost(entries.count)
        var out: [TokenDistribution?] = []
        for e in entries {
            // Ids of another vocabulary mean other words: a step must cross as text.
            precondition(words.knows(e.token), "token \(e.token) is not in this model's vocabulary")
            for s in e.sequences {
                var cells = kv[s] ?? []
                precondition(cells.count == Int(e.position), "seq \(s): token at \(e.position) but cache holds \(cells.count)")
                cells.append(e.token)
                kv[s] = cells
            }
            out.append(e.output.map { _ in predict(after: kv[e.sequences[0]]!, seq: e.sequences[0]) })
        }
        return out
    }

    private func predict(after context: [Token], seq: SeqID) -> TokenDistribution {
        let generated = context.dropFirst(promptLength)
        var step = 0, offset = 0
        for t in generated {
            if t == WordText.delimiter || t == WordText.thinkEnd { step += 1; offset = 0 } else { offset += 1 }
        }
        if let d = distribution?(seq, step, offset) { return d }
        let s = script(seq)
        guard step < s.count else { return .certain(WordText.eos) }
        guard offset < s[step].count else { return .certain(s[step].last!) }
        return .certain(s[step][offset])
    }

    public func copy(_ source: SeqID, to destination: SeqID, positions: Range<Int32>) {
        let src = kv[source] ?? []
        var dst = kv[destination] ?? []
        precondition(dst.count == Int(positions.lowerBound), "copy into seq \(destination) leaves a gap")
        dst.append(contentsOf: src[Int(positions.lowerBound)..<Int(positions.upperBound)])
        kv[destination] = dst
    }

    public func remove(_ sequence: SeqID, from position: Int32) {
        guard var cells = kv[sequence] else { return }
        if cells.count > Int(position) { cells.removeLast(cells.count - Int(position)) }
        kv[sequence] = cells.isEmpty ? nil : cells
    }

    public var liveSequences: [SeqID] { kv.keys.sorted() }
}

/// A semantic verifier with a fixed answer that counts what it was asked.
public final class FixedVerifier: StepVerifier {
    public let answer: (StepPair) -> Bool
    public private(set) var asked: [StepPair] = []
    public init(_ answer: @escaping (StepPair) -> Bool) { self.answer = answer }
    public func verify(_ pairs: [StepPair]) -> [Bool] { asked += pairs; return pairs.map(answer) }
}

/// The clock a scripted run's tick runner reads: it moves only when a scripted model decodes, so
/// cost-driven choices are tested deterministically.
public final class SimulatedClock {
    public var now = 0.0
    public init() {}
}
