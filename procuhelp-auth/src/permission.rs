//! Roles and permissions: one matrix in code, the single source for checks and for
//! `docs/access-matrix.md` (a test keeps the document equal to it).
//!
//! ```
//! use procuhelp_auth::{Permission, Role};
//! assert!(Role::Approver.allows(Permission::ApproveRequest));
//! assert!(!Role::Requester.allows(Permission::ApproveRequest));
//! assert!(!Role::ReadOnly.allows(Permission::CreateRequest));
//! ```

use crate::Role;

/// Everything a request can need permission for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// List and read suppliers.
    ReadSuppliers,
    /// Create, change and archive suppliers; read their bank details.
    ManageSuppliers,
    /// List and read purchase requests.
    ReadRequests,
    /// Raise purchase requests.
    CreateRequest,
    /// Approve or reject other people's purchase requests.
    ApproveRequest,
    /// Invite, disable and remove users; revoke their sessions.
    ManageUsers,
    /// Change users' roles.
    ManageRoles,
    /// Grant, approve and revoke time-bound elevation.
    ManageElevation,
    /// Read and export the audit log.
    ReadAuditLog,
    /// Configure SSO and SCIM.
    ManageSso,
    /// Rotate keys, shred data.
    ManageKeys,
}

impl Permission {
    /// Every permission, in matrix order.
    pub const ALL: [Permission; 11] = [
        Permission::ReadSuppliers,
        Permission::ManageSuppliers,
        Permission::ReadRequests,
        Permission::CreateRequest,
        Permission::ApproveRequest,
        Permission::ManageUsers,
        Permission::ManageRoles,
        Permission::ManageElevation,
        Permission::ReadAuditLog,
        Permission::ManageSso,
        Permission::ManageKeys,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::ReadSuppliers => "read_suppliers",
            Permission::ManageSuppliers => "manage_suppliers",
            Permission::ReadRequests => "read_requests",
            Permission::CreateRequest => "create_request",
            Permission::ApproveRequest => "approve_request",
            Permission::ManageUsers => "manage_users",
            Permission::ManageRoles => "manage_roles",
            Permission::ManageElevation => "manage_elevation",
            Permission::ReadAuditLog => "read_audit_log",
            Permission::ManageSso => "manage_sso",
            Permission::ManageKeys => "manage_keys",
        }
    }

    /// Whether a time-bound elevation may grant this permission. Managing SSO, SCIM
    /// (tokens, group → role mappings) and keys creates sign-in paths and credentials that
    /// hand out roles no base-role cap can bound and that outlive the elevation, or
    /// destroys data for good: only a base role holds them (issue #11, finding 5).
    pub const fn elevation_may_grant(self) -> bool {
        !matches!(self, Permission::ManageSso | Permission::ManageKeys)
    }

    /// The roles that hold it. The one place permissions are granted.
    const fn holders(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::ReadSuppliers | Permission::ReadRequests => {
                &[Admin, Approver, Requester, Auditor, ReadOnly]
            }
            Permission::ManageSuppliers => &[Admin],
            Permission::CreateRequest => &[Admin, Approver, Requester],
            Permission::ApproveRequest => &[Admin, Approver],
            Permission::ReadAuditLog => &[Admin, Auditor],
            Permission::ManageUsers
            | Permission::ManageRoles
            | Permission::ManageElevation
            | Permission::ManageSso
            | Permission::ManageKeys => &[Admin],
        }
    }
}

impl Role {
    /// Every role, most privileged first.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Approver,
        Role::Requester,
        Role::Auditor,
        Role::ReadOnly,
    ];

    /// Whether this role holds `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        permission.holders().contains(&self)
    }
}

/// Segregation of duties: nobody approves their own request, whatever their role.
/// `approver` is the acting *person*: a token stands for its creator
/// ([`crate::Principal::acting_user`]; [`crate::Principal::may_approve`] does this), never
/// for itself, or its creator could approve their own requests through it.
pub fn may_approve<U: PartialEq>(approver: &U, approver_role: Role, requester: &U) -> bool {
    approver != requester && approver_role.allows(Permission::ApproveRequest)
}

/// The matrix as Markdown (the content of `docs/access-matrix.md`).
pub fn access_matrix_markdown() -> String {
    let mut out = String::from(
        "# Access matrix\n\nGenerated from `procuhelp_auth::Permission` (the single source); \
         `cargo test -p procuhelp-auth` fails when this file differs. Regenerate with \
         `PROCUHELP_BLESS=1 cargo test -p procuhelp-auth --test access_matrix`.\n\n| permission |",
    );
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n| --- |");
    for _ in Role::ALL {
        out.push_str(" --- |");
    }
    out.push('\n');
    for p in Permission::ALL {
        out.push_str(&format!("| {} |", p.as_str()));
        for role in Role::ALL {
            out.push_str(if role.allows(p) { " yes |" } else { " — |" });
        }
        out.push('\n');
    }
    out.push_str(
        "\nNew users get `read_only` unless an admin or an SSO group mapping says otherwise. \
                  Nobody approves their own request (`may_approve`).\n",
    );
    let base_only: Vec<String> = Permission::ALL
        .iter()
        .filter(|p| !p.elevation_may_grant())
        .map(|p| format!("`{}`", p.as_str()))
        .collect();
    out.push_str(&format!(
        "\nA time-bound elevation never grants {}; nothing handed out under an elevation \
         (roles, new users, API tokens) holds a permission the holder's base role does not (`Role::covers`).\n",
        base_only.join(" or ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege_shape() {
        // An admin holds everything; read_only and auditor only read, and only the
        // auditor (besides admins) reads the audit log; read_only is below every role.
        for p in Permission::ALL {
            assert!(Role::Admin.allows(p));
            if Role::ReadOnly.allows(p) {
                assert!(p.as_str().starts_with("read_") && p != Permission::ReadAuditLog);
            }
            if Role::Auditor.allows(p) {
                assert!(p.as_str().starts_with("read_"));
            }
        }
        assert!(Role::Auditor.allows(Permission::ReadAuditLog));
        for role in Role::ALL {
            assert!(role.covers(Role::ReadOnly));
            assert!(Role::Admin.covers(role));
        }
    }

    #[test]
    fn the_total_order_extends_covers() {
        // Whoever strictly covers another role comes first in the total order (so the
        // database's role_rank and the caps never disagree on an elevation).
        for a in Role::ALL {
            for b in Role::ALL {
                if a != b && a.covers(b) {
                    assert!(a.outranks(b), "{a} covers {b}");
                }
                let m = a.meet(b);
                assert!(a.covers(m) && b.covers(m));
            }
        }
        assert!(!Role::Approver.covers(Role::Auditor));
        assert!(!Role::Auditor.covers(Role::Requester));
    }

    #[test]
    fn nobody_approves_their_own_request() {
        assert!(!may_approve(&1, Role::Admin, &1));
        assert!(may_approve(&1, Role::Approver, &2));
        assert!(!may_approve(&1, Role::Requester, &2));
    }
}
