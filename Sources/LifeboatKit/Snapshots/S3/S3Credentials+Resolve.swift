import Foundation

extension S3Credentials {
    /// Credentials from the standard places, in the AWS CLI's order: `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`), then the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) under profile `AWS_PROFILE`
    /// (default `default`).
    public static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Credentials {
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let id = env("AWS_ACCESS_KEY_ID") {
            guard let secret = env("AWS_SECRET_ACCESS_KEY") else {
                throw S3Error(.credentials, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both (or neither, to use the shared credentials file)")
            }
            return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: env("AWS_SESSION_TOKEN"))
        }
        let profile = env("AWS_PROFILE") ?? env("AWS_DEFAULT_PROFILE") ?? "default"
        let file = env("AWS_SHARED_CREDENTIALS_FILE") ?? (env("HOME") ?? NSHomeDirectory()) + "/.aws/credentials"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw S3Error(.credentials, "no S3 credentials: AWS_ACCESS_KEY_ID is not set and \(file) cannot be read; \(S3Error.whereSecretsGo)")
        }
        let values = parseProfile(text, profile: profile)
        guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else {
            throw S3Error(.credentials, "no S3 credentials: profile [\(profile)] of \(file) has no aws_access_key_id and aws_secret_access_key (AWS_PROFILE chooses the profile)")
        }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"])
    }

    /// The keys of one `[profile]` section of an INI-style credentials file.
    static func parseProfile(_ text: String, profile: String) -> [String: String] {
        var values: [String: String] = [:]
        var inProfile = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = String(name.dropFirst("profile ".count)).trimmingCharacters(in: .whitespaces) }
                inProfile = name == profile
                continue
            }
            guard inProfile, let eq = line.firstIndex(of: "=") else { continue }
            values[line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }
}
