/// Splits generated text into the reasoning (between `<think>` and `</think>`, tags dropped) and
/// the content, the way vLLM and DeepSeek's API return `reasoning_content` and `content`. Fed the
/// steps as they stream or the whole text at once, it gives the same split: a tag cut between
/// two pieces is held back until the next one decides it, and whitespace at either end of either
/// part is dropped (held back while more text may follow it).
public struct ReasoningSplitter: Sendable {
    /// Text for each part since the last call.
    public struct Delta: Sendable, Equatable {
        public var reasoning = ""
        public var content = ""
        public init(reasoning: String = "", content: String = "") {
            self.reasoning = reasoning
            self.content = content
        }
        public var isEmpty: Bool { reasoning.isEmpty && content.isEmpty }

        /// `other`'s text after this one's, part by part.
        public mutating func append(_ other: Delta) {
            reasoning += other.reasoning
            content += other.content
        }
    }

    private enum Phase: Sendable {
        /// Only whitespace so far: whether the text opens with `<think>` is not known yet.
        case opening
        case reasoning
        case content
    }

    /// One part's output: leading whitespace dropped, trailing whitespace held until text follows.
    private struct Part: Sendable {
        var started = false
        var space: [UInt8] = []

        mutating func take(_ bytes: ArraySlice<UInt8>) -> String {
            var body = bytes[...]
            if !started {
                body = body.drop(while: isSpace)
                guard !body.isEmpty else { return "" }
                started = true
            }
            guard let last = body.lastIndex(where: { !isSpace($0) }) else {
                space += body
                return ""
            }
            let out = space + body[...last]
            space = Array(body[(last + 1)...])
            return String(decoding: out, as: UTF8.self)
        }
    }

    private var phase = Phase.opening
    private var pending: [UInt8] = []
    private var reasoning = Part()
    private var content = Part()
    /// Whether the text opened with `<think>`: then `reasoning_content` is present, even if empty.
    public private(set) var thinks = false

    public init() {}

    public mutating func feed(_ text: String) -> Delta {
        pending += text.utf8
        var delta = Delta()
        while true {
            switch phase {
            case .opening:
                guard let first = pending.firstIndex(where: { !isSpace($0) }) else { return delta }
                let rest = pending[first...]
                if rest.starts(with: Self.open) {
                    phase = .reasoning
                    thinks = true
                    pending = Array(rest.dropFirst(Self.open.count))
                } else if rest.count < Self.open.count, Self.open.starts(with: rest) {
                    return delta
                } else {
                    phase = .content
                }
            case .reasoning:
                if let tag = pending.firstRange(of: Self.close) {
                    delta.reasoning += reasoning.take(pending[..<tag.lowerBound])
                    pending = Array(pending[tag.upperBound...])
                    phase = .content
                } else {
                    let keep = Self.tagPrefix(at: pending)
                    delta.reasoning += reasoning.take(pending[..<(pending.count - keep)])
                    pending = Array(pending[(pending.count - keep)...])
                    return delta
                }
            case .content:
                delta.content += content.take(pending[...])
                pending.removeAll()
                return delta
            }
        }
    }

    /// What was held back, once no more text comes: a reasoning the length cut short stays
    /// reasoning; text that only began like `<think>` is content.
    public mutating func finish() -> Delta {
        var delta = Delta()
        switch phase {
        case .reasoning: delta.reasoning = reasoning.take(pending[...])
        case .opening, .content: delta.content = content.take(pending[...])
        }
        pending.removeAll()
        return delta
    }

    /// The whole text split at once.
    public static func split(_ text: String) -> (reasoning: String?, content: String) {
        var splitter = ReasoningSplitter()
        var all = splitter.feed(text)
        all.append(splitter.finish())
        return (splitter.thinks ? all.reasoning : nil, all.content)
    }

    private static let open = Array("<think>".utf8)
    private static let close = Array("</think>".utf8)

    /// The length of the longest end of `bytes` that begins `</think>`.
    private static func tagPrefix(at bytes: [UInt8]) -> Int {
        for n in stride(from: min(close.count - 1, bytes.count), to: 0, by: -1)
        where close.starts(with: bytes[(bytes.count - n)...]) {
            return n
        }
        return 0
    }
}

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }
