/// A configuration problem, located so an operator can go straight to it:
/// `PATH:LINE: key 'k': reason`. `line` is 0 when the problem is the file as a whole.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var line: Int
    public var key: String
    public var message: String
    /// Reads as `unknown key 'k'` rather than `key 'k': unknown`; `message` holds the suggestion.
    public var isUnknownKey: Bool

    public init(path: String, line: Int, key: String, message: String, isUnknownKey: Bool = false) {
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        self.isUnknownKey = isUnknownKey
    }

    public var description: String {
        let location = line > 0 ? "\(path):\(line): " : "\(path): "
        if isUnknownKey { return location + "unknown key '\(key)'" + (message.isEmpty ? "" : "; " + message) }
        return location + (key.isEmpty ? message : "key '\(key)': \(message)")
    }
}

/// Why a value was refused; the parser adds path, line and key.
struct Invalid: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
