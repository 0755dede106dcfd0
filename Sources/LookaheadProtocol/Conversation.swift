/// Who speaks a turn of a conversation.
public enum ChatRole: String, Sendable, CaseIterable {
    case system, user, assistant
}

/// One turn of a conversation, as `ask` params and batch lines carry it: `{"role", "content"}`.
public struct ChatTurn: Sendable, Hashable {
    public var role: ChatRole
    public var content: String

    public init(role: ChatRole, content: String) {
        self.role = role
        self.content = content
    }

    /// Most turns a conversation may have.
    public static let maxTurns = 1000

    /// A `messages` value checked: a non-empty array of `{role, content}` and nothing else in each,
    /// ending with the user's turn (the answer is the assistant's next), not all empty. Errors are
    /// `invalid_params` naming the element (`messages[2].role`); too many turns is `too_large`.
    public static func conversation(_ value: JSONValue, field: String = "messages") throws(ProtocolError) -> [ChatTurn] {
        guard case .array(let list) = value, !list.isEmpty else {
            throw ProtocolError(.invalidParams, "\(field) must be a non-empty array of {role, content}, got \(value.kind)", field: field)
        }
        guard list.count <= maxTurns else {
            throw ProtocolError(.tooLarge, "\(field) has \(list.count) turns; the limit is \(maxTurns)", field: field)
        }
        var turns: [ChatTurn] = []
        for (i, element) in list.enumerated() {
            let at = "\(field)[\(i)]"
            guard let object = element.objectValue else {
                throw ProtocolError(.invalidParams, "\(at) must be an object {role, content}, got \(element.kind)", field: at)
            }
            if let stray = object.keys.first(where: { $0 != "role" && $0 != "content" }) {
                throw ProtocolError(.invalidParams, "\(at): unknown field \(stray)", field: "\(at).\(stray)")
            }
            guard let raw = object["role"]?.stringValue, let role = ChatRole(rawValue: raw) else {
                throw ProtocolError(.invalidParams, "\(at).role must be one of \(ChatRole.allCases.map(\.rawValue).joined(separator: ", "))",
                                    field: "\(at).role")
            }
            guard let content = object["content"]?.stringValue else {
                throw ProtocolError(.invalidParams, "\(at).content must be a string", field: "\(at).content")
            }
            turns.append(ChatTurn(role: role, content: content))
        }
        guard turns.last?.role == .user else {
            throw ProtocolError(.invalidParams, "the last turn must be the user's: the answer is the assistant's next turn",
                                field: "\(field)[\(list.count - 1)].role")
        }
        guard turns.contains(where: { $0.content.contains { !$0.isWhitespace } }) else {
            throw ProtocolError(.invalidParams, "\(field) must not all be empty", field: field)
        }
        return turns
    }
}
