import Foundation
import LookaheadProtocol

/// One benchmark problem: a GSM8K-format JSONL line (`question`, and `answer` ending in `#### N`).
public struct Problem: Sendable, Equatable {
    /// Line number in the data file (1-based), so a record can be traced back to its problem.
    public var line: Int
    public var question: String
    /// The reference answer after `####`, normalised like a graded answer.
    public var reference: String

    public init(line: Int, question: String, reference: String) {
        self.line = line
        self.question = question
        self.reference = reference
    }

    /// The same instruction the paper's GSM8K runs use, so the answer lands in a `\boxed{}`.
    public static let instruction = "\nPlease reason step by step, and put your final answer within \\boxed{}."

    public var prompt: String { question + Problem.instruction }

    /// Problems `offset ..< offset + limit` of the file's non-empty lines.
    public static func load(path: String, offset: Int = 0, limit: Int = .max) throws -> [Problem] {
        guard let data = FileManager.default.contents(atPath: path) else { throw BenchError.unreadable(path) }
        return try parse(jsonl: String(decoding: data, as: UTF8.self), offset: offset, limit: limit)
    }

    public static func parse(jsonl: String, offset: Int = 0, limit: Int = .max) throws -> [Problem] {
        var problems: [Problem] = []
        var seen = 0
        for (i, text) in jsonl.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard problems.count < limit else { break }
            guard !text.allSatisfy(\.isWhitespace) else { continue }
            seen += 1
            guard seen > offset else { continue }
            let object: JSONObject
            do { object = try JSONCodec.decodeObject(Array(text.utf8)) } catch {
                throw BenchError.badLine(i + 1, "\(error)")
            }
            guard let question = object["question"]?.stringValue else { throw BenchError.badLine(i + 1, "no \"question\" string") }
            guard let solution = object["answer"]?.stringValue, let reference = Grader.reference(ofSolution: solution) else {
                throw BenchError.badLine(i + 1, "no \"answer\" string with a reference after ####")
            }
            problems.append(Problem(line: i + 1, question: question, reference: reference))
        }
        return problems
    }
}

public enum BenchError: Error, CustomStringConvertible, Equatable {
    case unreadable(String)
    case badLine(Int, String)

    public var description: String {
        switch self {
        case .unreadable(let path): return "cannot read \(path)"
        case .badLine(let line, let why): return "line \(line): \(why)"
        }
    }
}
