import ArgumentParser
import Foundation
import LookaheadProtocol

/// A subcommand that asks lookaheadd one question without params and prints the result: for
/// people by default, as the daemon's JSON with `--json`.
protocol DaemonQuery: ParsableCommand {
    static var method: String { get }
    var connection: ConnectionOptions { get }
    var json: Bool { get }
    static func humanText(_ result: JSONValue) -> String
}

extension DaemonQuery {
    static func humanText(_ result: JSONValue) -> String { HumanText.render(result) }

    func run() throws {
        let result = try connection.connect().call(method: Self.method)
        FileHandle.standardOutput.write(json ? "\(result)\n" : Self.humanText(result))
    }
}

struct Status: DaemonQuery {
    static let configuration = CommandConfiguration(abstract: "Show lookaheadd's state, load and capacity.")
    static let method = "status"
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result object as JSON.") var json = false
}

struct Models: DaemonQuery {
    static let configuration = CommandConfiguration(abstract: "List the models lookaheadd has loaded.")
    static let method = "models"
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result object as JSON.") var json = false
}

struct Metrics: DaemonQuery {
    static let configuration = CommandConfiguration(abstract: "Print lookaheadd's Prometheus metrics.")
    static let method = "metrics"
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result object as JSON.") var json = false

    /// The exposition text as it is, for a scraper or grep.
    static func humanText(_ result: JSONValue) -> String {
        result.objectValue?["text"]?.stringValue ?? HumanText.render(result)
    }
}

struct Version: DaemonQuery {
    static let configuration = CommandConfiguration(abstract: "Show the versions of lookaheadd, its protocol and llama.cpp.")
    static let method = "version"
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result object as JSON.") var json = false
}

/// A result as indented `key: value` lines. It shows every field the daemon sends, so what a newer
/// daemon adds appears without a change here.
enum HumanText {
    static func render(_ value: JSONValue) -> String {
        var lines: [String] = []
        append(value, indent: "", to: &lines)
        return lines.map { $0 + "\n" }.joined()
    }

    private static func append(_ value: JSONValue, indent: String, to lines: inout [String]) {
        switch value {
        case .object(let object):
            for (key, item) in object {
                let label = indent + key.replacingOccurrences(of: "_", with: " ") + ":"
                if let inline = inline(item) {
                    lines.append("\(label) \(inline)")
                } else {
                    lines.append(label)
                    append(item, indent: indent + "  ", to: &lines)
                }
            }
        case .array(let items):
            for item in items {
                var itemLines: [String] = []
                append(item, indent: indent + "  ", to: &itemLines)
                if let first = itemLines.first { itemLines[0] = indent + "- " + first.dropFirst(indent.count + 2) }
                lines += itemLines
            }
        default:
            lines.append(indent + (inline(value) ?? ""))
        }
    }

    /// Scalars, empty containers and lists of scalars fit on their key's line.
    private static func inline(_ value: JSONValue) -> String? {
        switch value {
        case .null: return "none"
        case .string(let s): return s
        case .bool, .int, .double: return value.description
        case .object(let object): return object.isEmpty ? "none" : nil
        case .array(let items):
            let scalars = items.filter { $0.arrayValue == nil && $0.objectValue == nil }.compactMap(inline)
            guard scalars.count == items.count else { return nil }
            return items.isEmpty ? "none" : scalars.joined(separator: ", ")
        }
    }
}
