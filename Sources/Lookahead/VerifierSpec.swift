/// Which verifier chain decides a pair: what a request may name.
public enum VerifierKind: String, CaseIterable, Sendable, Hashable {
    /// Byte equality; case- and whitespace-folded equality; cosine similarity; an LLM judge.
    case exact, normalized, embedding, judge
    /// The paper's random-acceptance ablation (synthetic benchmarks).
    case random
}

/// Whose weights the LLM judge runs on.
public enum JudgeModel: Sendable, Hashable, CustomStringConvertible {
    case draft, target
    /// A GGUF file of its own.
    case path(String)

    /// `draft`, `target` or a path; nil for an empty text.
    public init?(parsing text: String) {
        switch text {
        case "": return nil
        case "draft": self = .draft
        case "target": self = .target
        default: self = .path(text)
        }
    }

    public var description: String {
        switch self {
        case .draft: return "draft"
        case .target: return "target"
        case .path(let path): return path
        }
    }
}

/// A verifier and its settings: one value from the configuration file or a command line to the
/// engines. Written and read in one place: `exact`, `embedding` or `embedding:T` (cosine
/// threshold), `judge` or `judge:MODEL` (draft, target or a GGUF path), `random:P`.
public enum VerifierSpec: Sendable, Hashable, CustomStringConvertible {
    case exact
    case normalized
    case embedding(threshold: Float)
    case judge(model: JudgeModel, margin: Float)
    case random(acceptance: Double)

    public static let defaultThreshold: Float = 0.95
    /// How far the judge's "yes" logit must lead its "no" logit.
    public static let defaultMargin: Float = 1
    public static let defaultJudge = JudgeModel.draft
    public static let `default` = VerifierSpec.embedding(threshold: defaultThreshold)

    public var kind: VerifierKind {
        switch self {
        case .exact: return .exact
        case .normalized: return .normalized
        case .embedding: return .embedding
        case .judge: return .judge
        case .random: return .random
        }
    }

    /// The spec for a kind with the default settings (`random` accepts half).
    public init(kind: VerifierKind) {
        switch kind {
        case .exact: self = .exact
        case .normalized: self = .normalized
        case .embedding: self = .embedding(threshold: VerifierSpec.defaultThreshold)
        case .judge: self = .judge(model: VerifierSpec.defaultJudge, margin: VerifierSpec.defaultMargin)
        case .random: self = .random(acceptance: 0.5)
        }
    }

    public init(parsing text: String) throws(VerifierSpecError) {
        let (name, argument) = text.firstIndex(of: ":").map { (String(text[..<$0]), String(text[text.index(after: $0)...])) }
            ?? (text, nil)
        guard let kind = VerifierKind(rawValue: name) else {
            throw VerifierSpecError(text: text, reason: "not one of exact, normalized, embedding[:THRESHOLD], judge[:draft|target|PATH], random:P")
        }
        switch (kind, argument) {
        case (.exact, nil):
            self = .exact
        case (.normalized, nil):
            self = .normalized
        case (.embedding, nil), (.judge, nil):
            self = VerifierSpec(kind: kind)
        case (.embedding, let t?):
            guard let threshold = Float(t), threshold > 0, threshold <= 1 else {
                throw VerifierSpecError(text: text, reason: "the threshold must be a number in (0, 1]")
            }
            self = .embedding(threshold: threshold)
        case (.judge, let m?):
            guard let model = JudgeModel(parsing: m) else { throw VerifierSpecError(text: text, reason: "judge: needs a model") }
            self = .judge(model: model, margin: VerifierSpec.defaultMargin)
        case (.random, let p?):
            guard let acceptance = Double(p), (0...1).contains(acceptance) else {
                throw VerifierSpecError(text: text, reason: "random:P needs 0 ≤ P ≤ 1")
            }
            self = .random(acceptance: acceptance)
        case (.random, nil):
            throw VerifierSpecError(text: text, reason: "random needs its acceptance: random:P")
        case (.exact, _?), (.normalized, _?):
            throw VerifierSpecError(text: text, reason: "\(kind.rawValue) takes no setting")
        }
    }

    /// What `init(parsing:)` reads back; defaults are left out.
    public var description: String {
        switch self {
        case .exact: return "exact"
        case .normalized: return "normalized"
        case .embedding(let t): return t == VerifierSpec.defaultThreshold ? "embedding" : "embedding:\(t)"
        case .judge(let model, _): return model == VerifierSpec.defaultJudge ? "judge" : "judge:\(model)"
        case .random(let p): return "random:\(p)"
        }
    }
}

public struct VerifierSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "'\(text)': \(reason)" }
}
