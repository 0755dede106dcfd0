import Foundation

/// Grades a final numeric answer the way GSM8K evaluations do: the content of the last `\boxed{…}`,
/// else the last number in the text, compared by value with the reference after `####`.
public enum Grader {
    /// The answer a solution commits to, normalised; nil when it names no number and boxes nothing.
    public static func answer(of text: String) -> String? {
        if let boxed = lastBoxed(in: text) { return normalise(boxed) }
        return lastNumber(in: text).map(normalise)
    }

    /// The reference of a GSM8K solution: what follows its last `####`.
    public static func reference(ofSolution solution: String) -> String? {
        guard let marker = solution.range(of: "####", options: .backwards) else { return nil }
        let value = normalise(String(solution[marker.upperBound...]))
        return value.isEmpty ? nil : value
    }

    public static func isCorrect(_ answer: String?, reference: String) -> Bool {
        guard let answer else { return false }
        if let a = Double(answer), let r = Double(reference) { return abs(a - r) <= 1e-6 * max(1, abs(r)) }
        return answer == reference
    }

    /// Numbers lose their thousands separators, currency and percent signs and trailing `.0`;
    /// a boxed expression that is not a number (`18 \text{ dollars}`, `x = 18`) grades as its last number.
    public static func normalise(_ raw: String) -> String {
        var s = raw
        for junk in ["\\$", "\\%", "\\!", "$", "%", ","] { s = s.replacingOccurrences(of: junk, with: "") }
        s = String(s.filter { !$0.isWhitespace })
        while s.hasSuffix(".") { s.removeLast() }
        if let value = Double(s), s.first.map({ $0.isNumber || $0 == "-" || $0 == "." }) == true {
            return canonical(value)
        }
        if let number = lastNumber(in: raw), let value = Double(number.filter { $0 != "," }) { return canonical(value) }
        return s
    }

    static func canonical(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// The content of the last `\boxed{…}`, braces balanced (`\boxed{\frac{1}{2}}`).
    static func lastBoxed(in text: String) -> String? {
        guard let open = text.range(of: "\\boxed{", options: .backwards) else { return nil }
        var depth = 1
        var i = open.upperBound
        while i < text.endIndex {
            switch text[i] {
            case "{": depth += 1
            case "}":
                depth -= 1
                if depth == 0 { return String(text[open.upperBound..<i]) }
            default: break
            }
            i = text.index(after: i)
        }
        return nil  // cut off by the token budget: no committed answer
    }

    /// The last number: digits with thousands commas and one decimal point; a minus sign counts only
    /// where it cannot be subtraction (`16-3` is 16 and 3, `= -3` is −3).
    static func lastNumber(in text: String) -> String? {
        let chars = Array(text)
        var last: String?
        var i = 0
        while i < chars.count {
            guard chars[i].isASCII, chars[i].isNumber else { i += 1; continue }
            let start = i
            var sawPoint = false
            while i < chars.count {
                let ch = chars[i]
                let nextIsDigit = i + 1 < chars.count && chars[i + 1].isASCII && chars[i + 1].isNumber
                if ch.isASCII, ch.isNumber {
                    i += 1
                } else if ch == ",", nextIsDigit, !sawPoint {
                    i += 1
                } else if ch == ".", nextIsDigit, !sawPoint {
                    sawPoint = true
                    i += 1
                } else {
                    break
                }
            }
            var number = String(chars[start..<i])
            if start > 0, chars[start - 1] == "-" {
                let before = start >= 2 ? chars[start - 2] : " "
                if !(before.isLetter || before.isNumber || before == ")") { number = "-" + number }
            }
            last = number
        }
        return last
    }
}
