import Llama
import Lookahead

/// The outcome of one request.
public struct Generation: Sendable {
    public var text: String
    public var tokens: [Token]
    public var steps: [Step]
    public var finishReason: FinishReason
    public var stats: SessionStats

    /// The text after `</think>`, or else the last non-empty line.
    public var answer: String { Generation.answer(of: text) }

    /// The reasoning before `</think>` without the tags; empty when the model did not think.
    public var thinking: String {
        let bytes = Array(text.utf8)
        guard let end = bytes.firstRange(of: Array("</think>".utf8))?.lowerBound else { return "" }
        var inner = bytes[..<end]
        if let open = inner.firstRange(of: Array("<think>".utf8)) { inner = inner[open.upperBound...] }
        return String(decoding: inner, as: UTF8.self).trimmingWhitespace
    }

    public static func answer(of text: String, thinkEnd: String = "</think>") -> String {
        let marker = Array(thinkEnd.utf8), bytes = Array(text.utf8)
        if !marker.isEmpty, bytes.count >= marker.count {
            for start in stride(from: bytes.count - marker.count, through: 0, by: -1)
            where bytes[start..<start + marker.count].elementsEqual(marker) {
                return String(decoding: bytes[(start + marker.count)...], as: UTF8.self).trimmingWhitespace
            }
        }
        let lines = text.split(whereSeparator: \.isNewline).map { String($0).trimmingWhitespace }
        return lines.last(where: { !$0.isEmpty }) ?? ""
    }
}
