//! A schema-driven Dremel shredder and assembler: nested values ⇄ per-leaf (values, definition
//! levels, repetition levels). Generic over any Parquet schema, so the vParquet4 row mapping only
//! builds value trees and never computes levels by hand.

use parquet::basic::{Repetition, Type as PhysicalType};
use parquet::data_type::ByteArray;
use parquet::schema::types::Type;

/// One nested value, shaped like the schema node it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An absent OPTIONAL value.
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Double(f64),
    Bytes(Vec<u8>),
    /// A group's fields, in schema order.
    Group(Vec<Value>),
    /// The instances of a REPEATED node, each shaped like that node.
    Repeated(Vec<Value>),
    /// Shorthand for a LIST-shaped group (`group { repeated group list { element } }`): the
    /// elements alone. Same levels as `Group([Repeated([Group([element]), ..])])`, without
    /// two allocations per element; the assembler returns lists in this form.
    List(Vec<Value>),
}

/// Why a value tree or a column's levels do not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

fn shape_error(message: impl Into<String>) -> ShapeError {
    ShapeError(message.into())
}

/// A schema node with the levels a value at this node is written with.
#[derive(Debug, Clone)]
pub struct SchemaNode {
    pub name: String,
    pub repetition: Repetition,
    /// Definition level of a present value at this node (optional/repeated ancestors, self included).
    pub def_level: i16,
    /// Repetition level of a repeated value at this node (repeated ancestors, self included).
    pub rep_level: i16,
    pub kind: NodeKind,
    /// Index of the first leaf below (or at) this node: every leaf below shares the structure
    /// above it, so this one leaf's levels tell whether the node is present or repeats.
    pub first_leaf: usize,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Group(Vec<SchemaNode>),
    Leaf {
        column: usize,
        physical: PhysicalType,
    },
    /// A LIST group left out of a projection: assembled as an empty list, its columns unread.
    Skipped,
}

impl SchemaNode {
    /// Builds the node tree of a message type; leaves are numbered in schema order.
    pub fn from_message(message: &Type) -> SchemaNode {
        let mut next_leaf = 0;
        let children = message
            .get_fields()
            .iter()
            .map(|field| Self::build(field, 0, 0, &mut next_leaf))
            .collect();
        SchemaNode {
            name: message.name().to_string(),
            repetition: Repetition::REQUIRED,
            def_level: 0,
            rep_level: 0,
            kind: NodeKind::Group(children),
            first_leaf: 0,
        }
    }

    fn build(field: &Type, parent_def: i16, parent_rep: i16, next_leaf: &mut usize) -> SchemaNode {
        let repetition = field.get_basic_info().repetition();
        let def_level = if repetition == Repetition::REQUIRED {
            parent_def
        } else {
            parent_def + 1
        };
        let rep_level = if repetition == Repetition::REPEATED {
            parent_rep + 1
        } else {
            parent_rep
        };
        let first_leaf = *next_leaf;
        let kind = if field.is_primitive() {
            let column = *next_leaf;
            *next_leaf += 1;
            NodeKind::Leaf {
                column,
                physical: field.get_physical_type(),
            }
        } else {
            NodeKind::Group(
                field
                    .get_fields()
                    .iter()
                    .map(|child| Self::build(child, def_level, rep_level, next_leaf))
                    .collect(),
            )
        };
        SchemaNode {
            name: field.name().to_string(),
            repetition,
            def_level,
            rep_level,
            kind,
            first_leaf,
        }
    }

    /// The tree with the LIST groups `skip` names (by the path of field names from the root)
    /// left out, and which leaf columns the projected tree still reads. Each node's
    /// `first_leaf` becomes its first leaf still read, since an unread column cannot tell
    /// whether a node is present or repeats. `None` when a skipped group is not a LIST or
    /// a group would keep no leaf.
    pub fn project(
        &self,
        skip: &dyn Fn(&[&str]) -> bool,
        leaf_count: usize,
    ) -> Option<(SchemaNode, Vec<bool>)> {
        let mut read = vec![false; leaf_count];
        let mut path = Vec::new();
        let root = self.project_node(skip, &mut path, &mut read)?;
        Some((root, read))
    }

    fn project_node<'n>(
        &'n self,
        skip: &dyn Fn(&[&str]) -> bool,
        path: &mut Vec<&'n str>,
        read: &mut [bool],
    ) -> Option<SchemaNode> {
        path.push(&self.name);
        let projected = match &self.kind {
            NodeKind::Leaf { column, .. } => {
                *read.get_mut(*column)? = true;
                Some(self.clone())
            }
            NodeKind::Skipped => Some(self.clone()),
            NodeKind::Group(_) if path.len() > 1 && skip(&path[1..]) => {
                // Only a REQUIRED LIST can be assembled as empty without reading a level.
                (self.list_parts().is_some() && self.repetition == Repetition::REQUIRED).then(
                    || SchemaNode {
                        kind: NodeKind::Skipped,
                        ..self.clone_shallow()
                    },
                )
            }
            NodeKind::Group(children) => {
                let mut kept = Vec::with_capacity(children.len());
                for child in children {
                    kept.push(child.project_node(skip, path, read)?);
                }
                let first_leaf = kept.iter().find_map(SchemaNode::first_read_leaf)?;
                Some(SchemaNode {
                    kind: NodeKind::Group(kept),
                    first_leaf,
                    ..self.clone_shallow()
                })
            }
        };
        path.pop();
        projected
    }

    /// The node without its children.
    fn clone_shallow(&self) -> SchemaNode {
        SchemaNode {
            name: self.name.clone(),
            repetition: self.repetition,
            def_level: self.def_level,
            rep_level: self.rep_level,
            kind: NodeKind::Skipped,
            first_leaf: self.first_leaf,
        }
    }

    /// The first leaf below this node that a projection reads.
    fn first_read_leaf(&self) -> Option<usize> {
        match &self.kind {
            NodeKind::Skipped => None,
            _ => Some(self.first_leaf),
        }
    }

    /// For a LIST-shaped group: its repeated child and that child's only field.
    fn list_parts(&self) -> Option<(&SchemaNode, &SchemaNode)> {
        let NodeKind::Group(children) = &self.kind else {
            return None;
        };
        let [repeated] = children.as_slice() else {
            return None;
        };
        let NodeKind::Group(repeated_children) = &repeated.kind else {
            return None;
        };
        match repeated_children.as_slice() {
            [element] if repeated.repetition == Repetition::REPEATED => Some((repeated, element)),
            _ => None,
        }
    }

    /// Calls `visit` for every leaf below this node.
    fn for_each_leaf(&self, visit: &mut impl FnMut(usize)) {
        match &self.kind {
            NodeKind::Leaf { column, .. } => visit(*column),
            NodeKind::Group(children) => {
                children.iter().for_each(|child| child.for_each_leaf(visit))
            }
            NodeKind::Skipped => {}
        }
    }
}

/// The non-null values of one leaf column, typed by its physical type.
#[derive(Clone, Debug, PartialEq)]
pub enum LeafValues {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Double(Vec<f64>),
    Bytes(Vec<ByteArray>),
    /// BYTE_ARRAY values as dictionary codes (see `coded`): only span-column reads make
    /// these, never records.
    Coded(super::coded::CodedBytes),
}

impl LeafValues {
    /// Whether both hold values of one physical type.
    pub fn same_type(&self, other: &LeafValues) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        match self {
            LeafValues::Bool(values) => values.len(),
            LeafValues::Int32(values) => values.len(),
            LeafValues::Int64(values) => values.len(),
            LeafValues::Double(values) => values.len(),
            LeafValues::Bytes(values) => values.len(),
            LeafValues::Coded(values) => values.len(),
        }
    }

    pub fn empty(physical: PhysicalType) -> Result<LeafValues, ShapeError> {
        Ok(match physical {
            PhysicalType::BOOLEAN => LeafValues::Bool(Vec::new()),
            PhysicalType::INT32 => LeafValues::Int32(Vec::new()),
            PhysicalType::INT64 => LeafValues::Int64(Vec::new()),
            PhysicalType::DOUBLE => LeafValues::Double(Vec::new()),
            PhysicalType::BYTE_ARRAY => LeafValues::Bytes(Vec::new()),
            other => return Err(shape_error(format!("unsupported physical type {other}"))),
        })
    }

    fn push(&mut self, value: Value) -> Result<(), ShapeError> {
        match (self, value) {
            (LeafValues::Bool(values), Value::Bool(value)) => values.push(value),
            (LeafValues::Int32(values), Value::Int32(value)) => values.push(value),
            (LeafValues::Int64(values), Value::Int64(value)) => values.push(value),
            (LeafValues::Double(values), Value::Double(value)) => values.push(value),
            (LeafValues::Bytes(values), Value::Bytes(value)) => values.push(ByteArray::from(value)),
            (LeafValues::Coded(_), _) => {
                return Err(shape_error("records are not built from coded values"))
            }
            (_, value) => {
                return Err(shape_error(format!(
                    "value {value:?} does not match the leaf type"
                )))
            }
        }
        Ok(())
    }

    fn get(&self, index: usize) -> Option<Value> {
        match self {
            LeafValues::Bool(values) => values.get(index).map(|value| Value::Bool(*value)),
            LeafValues::Int32(values) => values.get(index).map(|value| Value::Int32(*value)),
            LeafValues::Int64(values) => values.get(index).map(|value| Value::Int64(*value)),
            LeafValues::Double(values) => values.get(index).map(|value| Value::Double(*value)),
            LeafValues::Bytes(values) => values
                .get(index)
                .map(|value| Value::Bytes(value.data().to_vec())),
            LeafValues::Coded(values) => {
                values.get(index).map(|value| Value::Bytes(value.to_vec()))
            }
        }
    }
}

/// One leaf column of a batch of records: non-null values plus one definition and one
/// repetition level per entry (levels are kept even when the max level is 0, to keep the
/// assembler uniform; the writer drops them).
#[derive(Clone, Debug, PartialEq)]
pub struct LeafColumn {
    pub values: LeafValues,
    pub def_levels: Vec<i16>,
    pub rep_levels: Vec<i16>,
}

impl LeafColumn {
    /// Empties it, keeping its buffers for the next read.
    pub fn clear(&mut self) {
        match &mut self.values {
            LeafValues::Bool(values) => values.clear(),
            LeafValues::Int32(values) => values.clear(),
            LeafValues::Int64(values) => values.clear(),
            LeafValues::Double(values) => values.clear(),
            LeafValues::Bytes(values) => values.clear(),
            LeafValues::Coded(values) => values.clear(),
        }
        self.def_levels.clear();
        self.rep_levels.clear();
    }

    /// Makes room for `entries` more level entries (and as many values).
    pub fn reserve(&mut self, entries: usize) {
        match &mut self.values {
            LeafValues::Bool(values) => values.reserve(entries),
            LeafValues::Int32(values) => values.reserve(entries),
            LeafValues::Int64(values) => values.reserve(entries),
            LeafValues::Double(values) => values.reserve(entries),
            LeafValues::Bytes(values) => values.reserve(entries),
            LeafValues::Coded(values) => values.codes.reserve(entries),
        }
        self.def_levels.reserve(entries);
        self.rep_levels.reserve(entries);
    }

    /// A column a projection leaves unread: no levels, never consumed.
    pub fn unread() -> LeafColumn {
        LeafColumn {
            values: LeafValues::Bool(Vec::new()),
            def_levels: Vec::new(),
            rep_levels: Vec::new(),
        }
    }
}

/// Empty columns for every leaf of a schema.
pub fn empty_columns(root: &SchemaNode) -> Result<Vec<LeafColumn>, ShapeError> {
    let mut physical_types = Vec::new();
    collect_physical_types(root, &mut physical_types);
    physical_types
        .into_iter()
        .map(|physical| {
            Ok(LeafColumn {
                values: LeafValues::empty(physical)?,
                def_levels: Vec::new(),
                rep_levels: Vec::new(),
            })
        })
        .collect()
}

fn collect_physical_types(node: &SchemaNode, out: &mut Vec<PhysicalType>) {
    match &node.kind {
        NodeKind::Leaf { physical, .. } => out.push(*physical),
        NodeKind::Group(children) => children
            .iter()
            .for_each(|child| collect_physical_types(child, out)),
        // Projections are for reading; a writer always has the whole tree.
        NodeKind::Skipped => {}
    }
}

/// Appends one record (a `Value::Group` shaped like the message) to the columns, moving its
/// values in rather than copying them.
pub fn shred_record(
    root: &SchemaNode,
    record: Value,
    columns: &mut [LeafColumn],
) -> Result<(), ShapeError> {
    shred_present(root, record, 0, columns)
}

fn shred_node(
    node: &SchemaNode,
    value: Value,
    rep: i16,
    columns: &mut [LeafColumn],
) -> Result<(), ShapeError> {
    match node.repetition {
        Repetition::REQUIRED => shred_present(node, value, rep, columns),
        Repetition::OPTIONAL => match value {
            Value::Null => {
                write_absent(node, node.def_level - 1, rep, columns);
                Ok(())
            }
            present => shred_present(node, present, rep, columns),
        },
        Repetition::REPEATED => {
            let items = match value {
                Value::Repeated(items) => items,
                other => {
                    return Err(shape_error(format!(
                        "field {} is repeated but got {other:?}",
                        node.name
                    )))
                }
            };
            if items.is_empty() {
                write_absent(node, node.def_level - 1, rep, columns);
                return Ok(());
            }
            for (index, item) in items.into_iter().enumerate() {
                let item_rep = if index == 0 { rep } else { node.rep_level };
                shred_present(node, item, item_rep, columns)?;
            }
            Ok(())
        }
    }
}

fn shred_present(
    node: &SchemaNode,
    value: Value,
    rep: i16,
    columns: &mut [LeafColumn],
) -> Result<(), ShapeError> {
    match &node.kind {
        NodeKind::Leaf { column, .. } => {
            let leaf = columns
                .get_mut(*column)
                .ok_or_else(|| shape_error(format!("no column {column}")))?;
            leaf.values
                .push(value)
                .map_err(|error| shape_error(format!("field {}: {error}", node.name)))?;
            leaf.def_levels.push(node.def_level);
            leaf.rep_levels.push(rep);
            Ok(())
        }
        NodeKind::Skipped => Err(shape_error(format!(
            "field {} is left out of this schema tree",
            node.name
        ))),
        NodeKind::Group(children) => {
            let fields = match value {
                Value::List(elements) => {
                    let Some((repeated, element)) = node.list_parts() else {
                        return Err(shape_error(format!("field {} is not a list", node.name)));
                    };
                    if elements.is_empty() {
                        write_absent(repeated, repeated.def_level - 1, rep, columns);
                        return Ok(());
                    }
                    for (index, item) in elements.into_iter().enumerate() {
                        let item_rep = if index == 0 { rep } else { repeated.rep_level };
                        shred_node(element, item, item_rep, columns)?;
                    }
                    return Ok(());
                }
                Value::Group(fields) => fields,
                other => {
                    return Err(shape_error(format!(
                        "field {} is a group but got {other:?}",
                        node.name
                    )))
                }
            };
            if fields.len() != children.len() {
                return Err(shape_error(format!(
                    "group {} has {} fields, got {}",
                    node.name,
                    children.len(),
                    fields.len()
                )));
            }
            for (child, field) in children.iter().zip(fields) {
                shred_node(child, field, rep, columns)?;
            }
            Ok(())
        }
    }
}

/// An absent optional value or an empty repetition: one level entry, no value, on every leaf below.
fn write_absent(node: &SchemaNode, def: i16, rep: i16, columns: &mut [LeafColumn]) {
    node.for_each_leaf(&mut |column| {
        if let Some(leaf) = columns.get_mut(column) {
            leaf.def_levels.push(def);
            leaf.rep_levels.push(rep);
        }
    });
}

/// Reads records back from columns, one at a time, in order.
pub struct Assembler<'a> {
    root: &'a SchemaNode,
    columns: &'a [LeafColumn],
    cursors: Vec<Cursor>,
}

#[derive(Clone, Copy, Default)]
struct Cursor {
    level: usize,
    value: usize,
}

impl<'a> Assembler<'a> {
    pub fn new(root: &'a SchemaNode, columns: &'a [LeafColumn]) -> Assembler<'a> {
        Assembler {
            root,
            columns,
            cursors: vec![Cursor::default(); columns.len()],
        }
    }

    /// Whether every column has been consumed.
    pub fn is_done(&self) -> bool {
        self.cursors
            .iter()
            .zip(self.columns)
            .all(|(cursor, column)| cursor.level >= column.def_levels.len())
    }

    /// Assembles the next record; levels that contradict the schema or each other are an error.
    pub fn next_record(&mut self) -> Result<Value, ShapeError> {
        let record = self.assemble_present(self.root)?;
        // A record ends where every column's next entry starts a new record (rep 0).
        for (index, cursor) in self.cursors.iter().enumerate() {
            let column = &self.columns[index];
            if let Some(rep) = column.rep_levels.get(cursor.level) {
                if *rep != 0 {
                    return Err(shape_error(format!(
                        "column {index} continues a record with repetition level {rep}"
                    )));
                }
            }
        }
        Ok(record)
    }

    fn peek(&self, column: usize) -> Result<(i16, i16), ShapeError> {
        let cursor = self
            .cursors
            .get(column)
            .ok_or_else(|| shape_error(format!("no column {column}")))?;
        let levels = &self.columns[column];
        match (
            levels.def_levels.get(cursor.level),
            levels.rep_levels.get(cursor.level),
        ) {
            (Some(def), Some(rep)) => Ok((*def, *rep)),
            _ => Err(shape_error(format!(
                "column {column} ended early at level {}",
                cursor.level
            ))),
        }
    }

    fn assemble_node(&mut self, node: &SchemaNode) -> Result<Value, ShapeError> {
        match node.repetition {
            Repetition::REQUIRED => self.assemble_present(node),
            Repetition::OPTIONAL => {
                let (def, _) = self.peek(node.first_leaf)?;
                if def < node.def_level {
                    self.skip_absent(node)?;
                    Ok(Value::Null)
                } else {
                    self.assemble_present(node)
                }
            }
            Repetition::REPEATED => {
                let (def, _) = self.peek(node.first_leaf)?;
                if def < node.def_level {
                    self.skip_absent(node)?;
                    return Ok(Value::Repeated(Vec::new()));
                }
                let mut items = Vec::new();
                loop {
                    // Each item consumes at least one entry of the first leaf, so this ends.
                    items.push(self.assemble_present(node)?);
                    if !self.repeats(node)? {
                        break;
                    }
                }
                Ok(Value::Repeated(items))
            }
        }
    }

    fn assemble_present(&mut self, node: &SchemaNode) -> Result<Value, ShapeError> {
        match &node.kind {
            NodeKind::Leaf { column, .. } => {
                let (def, _) = self.peek(*column)?;
                if def != node.def_level {
                    return Err(shape_error(format!(
                        "column {column} has definition level {def} where field {} needs {}",
                        node.name, node.def_level
                    )));
                }
                let cursor = &mut self.cursors[*column];
                let value = self.columns[*column]
                    .values
                    .get(cursor.value)
                    .ok_or_else(|| {
                        shape_error(format!("column {column} has fewer values than levels"))
                    })?;
                cursor.level += 1;
                cursor.value += 1;
                Ok(value)
            }
            NodeKind::Skipped => Ok(Value::List(Vec::new())),
            NodeKind::Group(_) if node.list_parts().is_some() => self.assemble_list(node),
            NodeKind::Group(children) => {
                let mut fields = Vec::with_capacity(children.len());
                for child in children {
                    fields.push(self.assemble_node(child)?);
                }
                Ok(Value::Group(fields))
            }
        }
    }

    /// A LIST-shaped group, as `Value::List` of its elements.
    fn assemble_list(&mut self, node: &SchemaNode) -> Result<Value, ShapeError> {
        let Some((repeated, element)) = node.list_parts() else {
            return Err(shape_error(format!("field {} is not a list", node.name)));
        };
        let (def, _) = self.peek(repeated.first_leaf)?;
        if def < repeated.def_level {
            self.skip_absent(repeated)?;
            return Ok(Value::List(Vec::new()));
        }
        let mut elements = Vec::new();
        loop {
            elements.push(self.assemble_node(element)?);
            if !self.repeats(repeated)? {
                break;
            }
        }
        Ok(Value::List(elements))
    }

    /// Whether the next entry starts another instance of the repeated `node`.
    fn repeats(&self, node: &SchemaNode) -> Result<bool, ShapeError> {
        let first = &self.columns[node.first_leaf];
        let position = self.cursors[node.first_leaf].level;
        match first.rep_levels.get(position) {
            Some(rep) if *rep == node.rep_level => Ok(true),
            Some(rep) if *rep > node.rep_level => Err(shape_error(format!(
                "column {} repeats at level {rep} inside field {}",
                node.first_leaf, node.name
            ))),
            _ => Ok(false),
        }
    }

    fn skip_absent(&mut self, node: &SchemaNode) -> Result<(), ShapeError> {
        let mut result = Ok(());
        let cursors = &mut self.cursors;
        let columns = self.columns;
        node.for_each_leaf(&mut |column| {
            let cursor = &mut cursors[column];
            match columns[column].def_levels.get(cursor.level) {
                Some(def) if *def < node.def_level => cursor.level += 1,
                _ => {
                    if result.is_ok() {
                        result = Err(shape_error(format!(
                            "column {column} disagrees on absent field {}",
                            node.name
                        )));
                    }
                }
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::schema::parser::parse_message_type;

    const NESTED: &str = "
message Doc {
  REQUIRED INT64 id;
  OPTIONAL BYTE_ARRAY title (STRING);
  REQUIRED group tags (LIST) { REPEATED group list { REQUIRED BYTE_ARRAY element (STRING); } }
  REQUIRED group links (LIST) {
    REPEATED group list {
      REQUIRED group element {
        REQUIRED INT32 weight;
        OPTIONAL group meta { OPTIONAL BOOLEAN flag; REQUIRED DOUBLE score; }
        REQUIRED group values (LIST) { REPEATED group list { REQUIRED INT64 element; } }
      }
    }
  }
}";

    fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }

    /// The same list spelled out the way the schema nests it.
    fn generic_list(items: Vec<Value>) -> Value {
        Value::Group(vec![Value::Repeated(
            items
                .into_iter()
                .map(|item| Value::Group(vec![item]))
                .collect(),
        )])
    }

    fn link(weight: i32, meta: Option<(Option<bool>, f64)>, values: Vec<i64>) -> Value {
        let meta = match meta {
            None => Value::Null,
            Some((flag, score)) => Value::Group(vec![
                flag.map(Value::Bool).unwrap_or(Value::Null),
                Value::Double(score),
            ]),
        };
        Value::Group(vec![
            Value::Int32(weight),
            meta,
            list(values.into_iter().map(Value::Int64).collect()),
        ])
    }

    fn documents() -> Vec<Value> {
        vec![
            Value::Group(vec![
                Value::Int64(1),
                Value::Null,
                list(vec![]),
                list(vec![]),
            ]),
            Value::Group(vec![
                Value::Int64(2),
                Value::Bytes(b"t".to_vec()),
                list(vec![
                    Value::Bytes(b"a".to_vec()),
                    Value::Bytes(b"b".to_vec()),
                ]),
                list(vec![
                    link(7, None, vec![]),
                    link(8, Some((None, 1.5)), vec![1, 2, 3]),
                    link(9, Some((Some(true), 2.5)), vec![4]),
                ]),
            ]),
            Value::Group(vec![
                Value::Int64(3),
                Value::Bytes(Vec::new()),
                list(vec![Value::Bytes(Vec::new())]),
                list(vec![link(0, None, vec![5, 6])]),
            ]),
        ]
    }

    #[test]
    fn shred_then_assemble_round_trips() {
        let message = parse_message_type(NESTED).unwrap();
        let root = SchemaNode::from_message(&message);
        let mut columns = empty_columns(&root).unwrap();
        for document in documents() {
            shred_record(&root, document, &mut columns).unwrap();
        }
        // Check the classic Dremel levels of one leaf: links.list.element.values.list.element.
        assert_eq!(columns[6].def_levels, vec![0, 1, 2, 2, 2, 2, 2, 2]);
        assert_eq!(columns[6].rep_levels, vec![0, 0, 1, 2, 2, 1, 0, 2]);
        let mut assembler = Assembler::new(&root, &columns);
        let mut read = Vec::new();
        while !assembler.is_done() {
            read.push(assembler.next_record().unwrap());
        }
        assert_eq!(read, documents());
    }

    #[test]
    fn list_shorthand_shreds_like_the_spelled_out_list() {
        let message = parse_message_type(NESTED).unwrap();
        let root = SchemaNode::from_message(&message);
        let spelled_out = |tags: Vec<Value>| {
            Value::Group(vec![
                Value::Int64(1),
                Value::Null,
                generic_list(tags),
                generic_list(vec![]),
            ])
        };
        let short = |tags: Vec<Value>| {
            Value::Group(vec![Value::Int64(1), Value::Null, list(tags), list(vec![])])
        };
        for tags in [
            vec![],
            vec![Value::Bytes(b"a".to_vec()), Value::Bytes(b"b".to_vec())],
        ] {
            let mut generic_columns = empty_columns(&root).unwrap();
            shred_record(&root, spelled_out(tags.clone()), &mut generic_columns).unwrap();
            let mut short_columns = empty_columns(&root).unwrap();
            shred_record(&root, short(tags.clone()), &mut short_columns).unwrap();
            assert_eq!(generic_columns, short_columns);
            let mut assembler = Assembler::new(&root, &generic_columns);
            assert_eq!(assembler.next_record().unwrap(), short(tags));
        }
    }

    #[test]
    fn rejects_values_of_the_wrong_shape() {
        let message = parse_message_type(NESTED).unwrap();
        let root = SchemaNode::from_message(&message);
        let mut columns = empty_columns(&root).unwrap();
        let wrong = Value::Group(vec![
            Value::Int32(1),
            Value::Null,
            list(vec![]),
            list(vec![]),
        ]);
        assert!(shred_record(&root, wrong, &mut columns).is_err());
        let short = Value::Group(vec![Value::Int64(1)]);
        assert!(shred_record(&root, short, &mut columns).is_err());
    }

    #[test]
    fn inconsistent_levels_are_errors_not_panics() {
        let message = parse_message_type(NESTED).unwrap();
        let root = SchemaNode::from_message(&message);
        let mut columns = empty_columns(&root).unwrap();
        for document in documents() {
            shred_record(&root, document, &mut columns).unwrap();
        }
        let mut broken = columns.clone();
        broken[3].rep_levels.truncate(2);
        broken[3].def_levels.truncate(2);
        let mut assembler = Assembler::new(&root, &broken);
        let mut failed = false;
        for _ in 0..3 {
            if assembler.next_record().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
}
