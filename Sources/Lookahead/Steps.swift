import Llama

/// How generation is cut into steps (the paper: a blank line, or 100 tokens).
public struct StepRules: Sendable, Equatable {
    public var delimiter: String = "\n\n"
    public var maxTokens: Int = 100
    public var thinkEnd: String = "</think>"
    /// Steps cut by the cap count as clean boundaries, verified like blank-line steps. For synthetic
    /// (random-weight) models, which never write a blank line: their steps are cut by length alone.
    public var capIsBoundary = false

    public init(delimiter: String = "\n\n", maxTokens: Int = 100, thinkEnd: String = "</think>") {
        self.delimiter = delimiter
        self.maxTokens = maxTokens
        self.thinkEnd = thinkEnd
    }

    /// Whether the text after a step so ended is aligned for both models, so the next pair can match.
    public func isBoundary(_ end: StepEnd) -> Bool { end == .delimiter || (capIsBoundary && end == .cap) }
}

/// Why a step ended. Two steps can only be the same step if they ended the same way.
public enum StepEnd: String, Sendable, Equatable {
    case delimiter   // a blank line: a clean boundary
    case cap         // the per-step token cap: cut mid-thought, never verified
    case thinkEnd    // `</think>`: reasoning is over, the answer follows
    case endOfText   // EOS/EOT: generation is over
}

/// A step being generated, token by token, with the bytes needed to see its boundary.
struct StepBuilder: Sendable {
    private(set) var tokens: [Token] = []
    private(set) var bytes: [UInt8] = []
    private(set) var end: StepEnd?

    var isDone: Bool { end != nil }

    /// Appends `token` and reports whether it closed the step.
    mutating func append(_ token: Token, rules: StepRules, text: TokenText) -> Bool {
        precondition(end == nil, "appending to a finished step")
        tokens.append(token)
        if text.isEndOfGeneration(token) {
            end = .endOfText
            return true
        }
        let piece = text.pieceBytes(token)
        // Only the tail can newly contain a marker: search the last piece plus enough overlap.
        let from = max(0, bytes.count - max(rules.delimiter.utf8.count, rules.thinkEnd.utf8.count))
        bytes.append(contentsOf: piece)
        let tail = bytes[from...]
        if !rules.thinkEnd.isEmpty, tail.contains(subsequence: Array(rules.thinkEnd.utf8)) {
            end = .thinkEnd
        } else if !rules.delimiter.isEmpty, tail.contains(subsequence: Array(rules.delimiter.utf8)) {
            end = .delimiter
        } else if tokens.count >= rules.maxTokens {
            end = .cap
        }
        return end != nil
    }

    /// Ends the step where it stands: the request's token budget runs out inside it.
    mutating func cut() { if end == nil { end = .cap } }

    var step: Step { Step(tokens: tokens, text: String(decoding: bytes, as: UTF8.self), end: end ?? .cap) }
}

/// A finished step: its tokens, its text and how it ended.
public struct Step: Sendable, Equatable {
    public var tokens: [Token]
    public var text: String
    public var end: StepEnd
}

extension ArraySlice where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        var i = startIndex
        while i + needle.count <= endIndex {
            if self[i] == needle[0], self[i..<i + needle.count].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
