//! Ports, their fixed layer stacks, and groups.

use std::fmt;

use crate::rule::Rule;

/// The layers of every port, in outbound order (nearest the endpoint
/// first). Outbound packets walk them top to bottom, inbound bottom to top,
/// so layers above `lb` see the VIP and layers below it the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerName {
    /// `RuleType: Host` ACLs, then the seed's firewall defaults (the
    /// endpoint's own firewall: WFP on Windows).
    AclHost,
    /// `Switch` ACLs and `NetworkACL`s (VFP's port ACLs).
    AclSwitch,
    /// Load balancers: frontend to backends.
    Lb,
    /// OutBoundNAT and published ports.
    Nat,
    /// Routes and encapsulation.
    Route,
}

impl LayerName {
    /// The stack, in outbound order.
    pub const STACK: [LayerName; 5] = [
        LayerName::AclHost,
        LayerName::AclSwitch,
        LayerName::Lb,
        LayerName::Nat,
        LayerName::Route,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LayerName::AclHost => "acl-host",
            LayerName::AclSwitch => "acl-switch",
            LayerName::Lb => "lb",
            LayerName::Nat => "nat",
            LayerName::Route => "route",
        }
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group: the unit of atomic replacement, with one owner (e.g.
/// `acl/<endpoint>`, `defaults`). Its rules are kept in [`Rule::order`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub owner: String,
    /// Groups of a layer are visited in ascending order (then by owner).
    pub order: u32,
    rules: Vec<Rule>,
}

impl Group {
    pub fn new(owner: impl Into<String>, order: u32, mut rules: Vec<Rule>) -> Self {
        rules.sort_by(Rule::order);
        Group {
            owner: owner.into(),
            order,
            rules,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// One layer of a port: its groups, in visiting order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub name: LayerName,
    groups: Vec<Group>,
}

impl Layer {
    fn new(name: LayerName) -> Self {
        Layer {
            name,
            groups: Vec::new(),
        }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Put `group` in, replacing the group of the same owner.
    fn set_group(&mut self, group: Group) {
        self.groups.retain(|g| g.owner != group.owner);
        self.groups.push(group);
        self.groups
            .sort_by(|a, b| (a.order, &a.owner).cmp(&(b.order, &b.owner)));
    }

    fn remove_group(&mut self, owner: &str) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.owner != owner);
        self.groups.len() != before
    }
}

/// What a port attaches to the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A container's vNIC.
    Endpoint,
    /// The host's own stack.
    Host,
    /// The physical adapter.
    Uplink,
}

/// A switch port with its layer stack. Every change bumps the epoch, so
/// flows decided under an older one are known to need a fresh look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub id: String,
    pub kind: PortKind,
    epoch: u64,
    layers: Vec<Layer>,
}

impl Port {
    pub fn new(id: impl Into<String>, kind: PortKind) -> Self {
        Port {
            id: id.into(),
            kind,
            epoch: 0,
            layers: LayerName::STACK.iter().map(|&n| Layer::new(n)).collect(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn layer(&self, name: LayerName) -> &Layer {
        self.layers
            .iter()
            .find(|l| l.name == name)
            .expect("every port has every layer")
    }

    /// Replace (or add) the group of `group.owner` in `layer`.
    pub fn set_group(&mut self, layer: LayerName, group: Group) {
        self.layer_mut(layer).set_group(group);
        self.epoch += 1;
    }

    /// Remove `owner`'s group from `layer`; false if it had none.
    pub fn remove_group(&mut self, layer: LayerName, owner: &str) -> bool {
        let removed = self.layer_mut(layer).remove_group(owner);
        if removed {
            self.epoch += 1;
        }
        removed
    }

    fn layer_mut(&mut self, name: LayerName) -> &mut Layer {
        self.layers
            .iter_mut()
            .find(|l| l.name == name)
            .expect("every port has every layer")
    }
}
