import Foundation
import Synchronization

/// The credentials of a control socket peer (SO_PEERCRED).
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "uid \(uid) (pid \(pid))" }
}

/// Users and groups given a role (`admins`, `deleters` in the daemon's config).
public struct AccessList: Sendable {
    public var uids: [uid_t] = []
    public var groups: [String] = []

    public init(uids: [uid_t] = [], groups: [String] = []) {
        self.uids = uids
        self.groups = groups
    }
}

/// Who may change things: anyone who can connect may read; mutating commands need uid 0, the
/// daemon's own uid, a configured admin uid, or membership of a configured admin group.
public struct Authorizer: Sendable {
    public let daemonUID: UInt32
    public let adminUIDs: Set<UInt32>
    public let adminGIDs: Set<UInt32>
    /// `deleters`: who may soft-delete sites besides root (admins may not unless listed here).
    public let deleterUIDs: Set<UInt32>
    public let deleterGIDs: Set<UInt32>

    public init(admins: AccessList, deleters: AccessList = .init(), daemonUID: UInt32 = geteuid()) {
        self.daemonUID = daemonUID
        adminUIDs = Set(admins.uids)
        adminGIDs = Set(admins.groups.compactMap { name in getgrnam(name).map { $0.pointee.gr_gid } })
        deleterUIDs = Set(deleters.uids)
        deleterGIDs = Set(deleters.groups.compactMap { name in getgrnam(name).map { $0.pointee.gr_gid } })
    }

    /// Whether the peer may soft-delete sites: root or a configured deleter only. The daemon's
    /// own user and admins are not deleters by default: deleting is a separate, named role.
    public func mayDelete(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 || deleterUIDs.contains(peer.uid) { return true }
        guard !deleterGIDs.isEmpty else { return false }
        if deleterGIDs.contains(peer.gid) { return true }
        return !Self.supplementaryGroups(of: peer.pid).isDisjoint(with: deleterGIDs)
    }

    public func mayMutate(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 || peer.uid == daemonUID || adminUIDs.contains(peer.uid) { return true }
        guard !adminGIDs.isEmpty else { return false }
        if adminGIDs.contains(peer.gid) { return true }
        return !Self.supplementaryGroups(of: peer.pid).isDisjoint(with: adminGIDs)
    }

    /// The peer's supplementary groups, from `/proc/<pid>/status` (SO_PEERCRED has only the primary).
    static func supplementaryGroups(of pid: Int32) -> Set<UInt32> {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) else { return [] }
        return Set(line.dropFirst("Groups:".count).split(separator: " ").compactMap { UInt32($0.trimmingCharacters(in: .whitespaces)) })
    }
}

/// The authorizer in force; a config reload replaces it.
public final class AccessControl: Sendable {
    private let current: Mutex<Authorizer>
    /// Per uid, when its recent refused deletes were recorded in the ledger.
    private let refusals = Mutex<[UInt32: [Date]]>([:])

    /// Refused deletes recorded per uid within `refusalWindow`; more are logged only. A refused
    /// delete is recorded so that the attempt is on record, but anyone who can connect may make
    /// one: without a bound, a reader could fill the ledger and push real runs off `runs`.
    public static let recordedRefusals = 10
    public static let refusalWindow: TimeInterval = 600

    public init(_ authorizer: Authorizer) { current = Mutex(authorizer) }

    /// Whether a refused delete of `peer`'s, at `now`, is recorded in the ledger (and counts).
    public func mayRecordRefusal(of peer: PeerCredentials, at now: Date) -> Bool {
        refusals.withLock { all in
            var recent = (all[peer.uid] ?? []).filter { now.timeIntervalSince($0) < Self.refusalWindow }
            defer { all[peer.uid] = recent.isEmpty ? nil : recent }
            guard recent.count < Self.recordedRefusals else { return false }
            recent.append(now)
            return true
        }
    }

    public var authorizer: Authorizer {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    public func mayMutate(_ peer: PeerCredentials) -> Bool { authorizer.mayMutate(peer) }

    public func mayDelete(_ peer: PeerCredentials) -> Bool { authorizer.mayDelete(peer) }
}
