//! The vParquet4 schema as Tempo's reader binds it (by leaf position), and the per-column
//! write settings Tempo's writer uses (reference/tempo-block-format.md §5.1–§5.3).

use std::sync::Arc;

use parquet::basic::{Compression, Encoding, Type as PhysicalType};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{SchemaDescriptor, TypePtr};

/// The exact message type of Tempo v3.0.3's vParquet4 blocks, as the `parquet` crate prints
/// it (golden `schemas/vParquet4.schema.txt`). Tempo binds leaf columns by position, so this
/// text is the contract: any change silently corrupts what Tempo reads.
pub const SCHEMA_TEXT: &str = r#"
message Trace {
  REQUIRED BYTE_ARRAY TraceID;
  REQUIRED BYTE_ARRAY TraceIDText (STRING);
  REQUIRED INT64 StartTimeUnixNano (INTEGER(64,false));
  REQUIRED INT64 EndTimeUnixNano (INTEGER(64,false));
  REQUIRED INT64 DurationNano (INTEGER(64,false));
  REQUIRED BYTE_ARRAY RootServiceName (STRING);
  REQUIRED BYTE_ARRAY RootSpanName (STRING);
  REQUIRED group ServiceStats (MAP) {
    REPEATED group key_value {
      REQUIRED BYTE_ARRAY key (STRING);
      REQUIRED group value {
        REQUIRED INT32 SpanCount (INTEGER(32,false));
        REQUIRED INT32 ErrorCount (INTEGER(32,false));
      }
    }
  }
  REQUIRED group rs (LIST) {
    REPEATED group list {
      REQUIRED group element {
        REQUIRED group Resource {
          REQUIRED group Attrs (LIST) {
            REPEATED group list {
              REQUIRED group element {
                REQUIRED BYTE_ARRAY Key (STRING);
                REQUIRED BOOLEAN IsArray;
                REQUIRED group Value (LIST) {
                  REPEATED group list {
                    REQUIRED BYTE_ARRAY element (STRING);
                  }
                }
                REQUIRED group ValueInt (LIST) {
                  REPEATED group list {
                    REQUIRED INT64 element (INTEGER(64,true));
                  }
                }
                REQUIRED group ValueDouble (LIST) {
                  REPEATED group list {
                    REQUIRED DOUBLE element;
                  }
                }
                REQUIRED group ValueBool (LIST) {
                  REPEATED group list {
                    REQUIRED BOOLEAN element;
                  }
                }
                OPTIONAL BYTE_ARRAY ValueUnsupported (STRING);
              }
            }
          }
          REQUIRED INT32 DroppedAttributesCount (INTEGER(32,true));
          REQUIRED BYTE_ARRAY ServiceName (STRING);
          OPTIONAL BYTE_ARRAY Cluster (STRING);
          OPTIONAL BYTE_ARRAY Namespace (STRING);
          OPTIONAL BYTE_ARRAY Pod (STRING);
          OPTIONAL BYTE_ARRAY Container (STRING);
          OPTIONAL BYTE_ARRAY K8sClusterName (STRING);
          OPTIONAL BYTE_ARRAY K8sNamespaceName (STRING);
          OPTIONAL BYTE_ARRAY K8sPodName (STRING);
          OPTIONAL BYTE_ARRAY K8sContainerName (STRING);
          REQUIRED group DedicatedAttributes {
            OPTIONAL BYTE_ARRAY String01 (STRING);
            OPTIONAL BYTE_ARRAY String02 (STRING);
            OPTIONAL BYTE_ARRAY String03 (STRING);
            OPTIONAL BYTE_ARRAY String04 (STRING);
            OPTIONAL BYTE_ARRAY String05 (STRING);
            OPTIONAL BYTE_ARRAY String06 (STRING);
            OPTIONAL BYTE_ARRAY String07 (STRING);
            OPTIONAL BYTE_ARRAY String08 (STRING);
            OPTIONAL BYTE_ARRAY String09 (STRING);
            OPTIONAL BYTE_ARRAY String10 (STRING);
          }
        }
        REQUIRED group ss (LIST) {
          REPEATED group list {
            REQUIRED group element {
              REQUIRED group Scope {
                REQUIRED BYTE_ARRAY Name (STRING);
                REQUIRED BYTE_ARRAY Version (STRING);
                REQUIRED group Attrs (LIST) {
                  REPEATED group list {
                    REQUIRED group element {
                      REQUIRED BYTE_ARRAY Key (STRING);
                      REQUIRED BOOLEAN IsArray;
                      REQUIRED group Value (LIST) {
                        REPEATED group list {
                          REQUIRED BYTE_ARRAY element (STRING);
                        }
                      }
                      REQUIRED group ValueInt (LIST) {
                        REPEATED group list {
                          REQUIRED INT64 element (INTEGER(64,true));
                        }
                      }
                      REQUIRED group ValueDouble (LIST) {
                        REPEATED group list {
                          REQUIRED DOUBLE element;
                        }
                      }
                      REQUIRED group ValueBool (LIST) {
                        REPEATED group list {
                          REQUIRED BOOLEAN element;
                        }
                      }
                      OPTIONAL BYTE_ARRAY ValueUnsupported (STRING);
                    }
                  }
                }
                REQUIRED INT32 DroppedAttributesCount (INTEGER(32,true));
              }
              REQUIRED group Spans (LIST) {
                REPEATED group list {
                  REQUIRED group element {
                    REQUIRED BYTE_ARRAY SpanID;
                    REQUIRED BYTE_ARRAY ParentSpanID;
                    REQUIRED INT32 ParentID (INTEGER(32,true));
                    REQUIRED INT32 NestedSetLeft (INTEGER(32,true));
                    REQUIRED INT32 NestedSetRight (INTEGER(32,true));
                    REQUIRED BYTE_ARRAY Name (STRING);
                    REQUIRED INT64 Kind (INTEGER(64,true));
                    REQUIRED BYTE_ARRAY TraceState (STRING);
                    REQUIRED INT64 StartTimeUnixNano (INTEGER(64,false));
                    REQUIRED INT64 DurationNano (INTEGER(64,false));
                    REQUIRED INT64 StatusCode (INTEGER(64,true));
                    REQUIRED BYTE_ARRAY StatusMessage (STRING);
                    REQUIRED group Attrs (LIST) {
                      REPEATED group list {
                        REQUIRED group element {
                          REQUIRED BYTE_ARRAY Key (STRING);
                          REQUIRED BOOLEAN IsArray;
                          REQUIRED group Value (LIST) {
                            REPEATED group list {
                              REQUIRED BYTE_ARRAY element (STRING);
                            }
                          }
                          REQUIRED group ValueInt (LIST) {
                            REPEATED group list {
                              REQUIRED INT64 element (INTEGER(64,true));
                            }
                          }
                          REQUIRED group ValueDouble (LIST) {
                            REPEATED group list {
                              REQUIRED DOUBLE element;
                            }
                          }
                          REQUIRED group ValueBool (LIST) {
                            REPEATED group list {
                              REQUIRED BOOLEAN element;
                            }
                          }
                          OPTIONAL BYTE_ARRAY ValueUnsupported (STRING);
                        }
                      }
                    }
                    REQUIRED INT32 DroppedAttributesCount (INTEGER(32,true));
                    REQUIRED group Events (LIST) {
                      REPEATED group list {
                        REQUIRED group element {
                          REQUIRED INT64 TimeSinceStartNano (INTEGER(64,false));
                          REQUIRED BYTE_ARRAY Name (STRING);
                          REQUIRED group Attrs (LIST) {
                            REPEATED group list {
                              REQUIRED group element {
                                REQUIRED BYTE_ARRAY Key (STRING);
                                REQUIRED BOOLEAN IsArray;
                                REQUIRED group Value (LIST) {
                                  REPEATED group list {
                                    REQUIRED BYTE_ARRAY element (STRING);
                                  }
                                }
                                REQUIRED group ValueInt (LIST) {
                                  REPEATED group list {
                                    REQUIRED INT64 element (INTEGER(64,true));
                                  }
                                }
                                REQUIRED group ValueDouble (LIST) {
                                  REPEATED group list {
                                    REQUIRED DOUBLE element;
                                  }
                                }
                                REQUIRED group ValueBool (LIST) {
                                  REPEATED group list {
                                    REQUIRED BOOLEAN element;
                                  }
                                }
                                OPTIONAL BYTE_ARRAY ValueUnsupported (STRING);
                              }
                            }
                          }
                          REQUIRED INT32 DroppedAttributesCount (INTEGER(32,true));
                        }
                      }
                    }
                    REQUIRED INT32 DroppedEventsCount (INTEGER(32,true));
                    REQUIRED group Links (LIST) {
                      REPEATED group list {
                        REQUIRED group element {
                          REQUIRED BYTE_ARRAY TraceID;
                          REQUIRED BYTE_ARRAY SpanID;
                          REQUIRED BYTE_ARRAY TraceState (STRING);
                          REQUIRED group Attrs (LIST) {
                            REPEATED group list {
                              REQUIRED group element {
                                REQUIRED BYTE_ARRAY Key (STRING);
                                REQUIRED BOOLEAN IsArray;
                                REQUIRED group Value (LIST) {
                                  REPEATED group list {
                                    REQUIRED BYTE_ARRAY element (STRING);
                                  }
                                }
                                REQUIRED group ValueInt (LIST) {
                                  REPEATED group list {
                                    REQUIRED INT64 element (INTEGER(64,true));
                                  }
                                }
                                REQUIRED group ValueDouble (LIST) {
                                  REPEATED group list {
                                    REQUIRED DOUBLE element;
                                  }
                                }
                                REQUIRED group ValueBool (LIST) {
                                  REPEATED group list {
                                    REQUIRED BOOLEAN element;
                                  }
                                }
                                OPTIONAL BYTE_ARRAY ValueUnsupported (STRING);
                              }
                            }
                          }
                          REQUIRED INT32 DroppedAttributesCount (INTEGER(32,true));
                        }
                      }
                    }
                    REQUIRED INT32 DroppedLinksCount (INTEGER(32,true));
                    OPTIONAL BYTE_ARRAY HttpMethod (STRING);
                    OPTIONAL BYTE_ARRAY HttpUrl (STRING);
                    OPTIONAL INT64 HttpStatusCode (INTEGER(64,true));
                    REQUIRED group DedicatedAttributes {
                      OPTIONAL BYTE_ARRAY String01 (STRING);
                      OPTIONAL BYTE_ARRAY String02 (STRING);
                      OPTIONAL BYTE_ARRAY String03 (STRING);
                      OPTIONAL BYTE_ARRAY String04 (STRING);
                      OPTIONAL BYTE_ARRAY String05 (STRING);
                      OPTIONAL BYTE_ARRAY String06 (STRING);
                      OPTIONAL BYTE_ARRAY String07 (STRING);
                      OPTIONAL BYTE_ARRAY String08 (STRING);
                      OPTIONAL BYTE_ARRAY String09 (STRING);
                      OPTIONAL BYTE_ARRAY String10 (STRING);
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"#;

/// Number of leaf columns in a vParquet4 file.
pub const LEAF_COUNT: usize = 103;

/// The parsed vParquet4 message type, shared by every writer and reader.
pub fn schema() -> TypePtr {
    static SCHEMA: std::sync::OnceLock<TypePtr> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            // A constant that a unit test parses; failing here is a build defect, not input.
            Arc::new(parse_message_type(SCHEMA_TEXT).expect("the vParquet4 schema text parses"))
        })
        .clone()
}

/// The schema with its leaf columns and their max definition/repetition levels.
pub fn schema_descriptor() -> Arc<SchemaDescriptor> {
    static DESCRIPTOR: std::sync::OnceLock<Arc<SchemaDescriptor>> = std::sync::OnceLock::new();
    DESCRIPTOR
        .get_or_init(|| Arc::new(SchemaDescriptor::new(schema())))
        .clone()
}

/// How one leaf column is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSettings {
    pub compression: Compression,
    /// `None`: dictionary encoding (PLAIN dictionary page, RLE_DICTIONARY data pages) that never
    /// falls back. `Some`: no dictionary, this encoding for every data page.
    pub encoding: Option<Encoding>,
}

const SPAN: &str = "rs.list.element.ss.list.element.Spans.list.element.";
const RESOURCE: &str = "rs.list.element.Resource.";
const SCOPE: &str = "rs.list.element.ss.list.element.Scope.";

/// Tempo's struct tags, restated as rules over the leaf path; a test checks them against the
/// column chunks of the Tempo-written golden block.
pub fn column_settings(path: &str, physical: PhysicalType) -> ColumnSettings {
    let uncompressed = matches!(
        path,
        "TraceID"
            | "StartTimeUnixNano"
            | "EndTimeUnixNano"
            | "DurationNano"
            | "RootServiceName"
            | "RootSpanName"
    ) || path.starts_with("ServiceStats.")
        || path
            .strip_prefix(SPAN)
            .map(|span_field| {
                matches!(
                    span_field,
                    "SpanID"
                        | "ParentSpanID"
                        | "ParentID"
                        | "NestedSetLeft"
                        | "NestedSetRight"
                        | "Kind"
                        | "StartTimeUnixNano"
                        | "DurationNano"
                        | "StatusCode"
                        | "Events.list.element.TimeSinceStartNano"
                        | "Links.list.element.TraceID"
                        | "Links.list.element.SpanID"
                )
            })
            .unwrap_or(false);
    let compression = if uncompressed {
        Compression::UNCOMPRESSED
    } else {
        Compression::SNAPPY
    };
    let encoding = match physical {
        // PLAIN, not RLE: parquet-go reads RLE booleans in V2 pages as false (spec §14, trap 1).
        PhysicalType::BOOLEAN | PhysicalType::DOUBLE => Some(Encoding::PLAIN),
        PhysicalType::INT32 | PhysicalType::INT64 => {
            let plain = path.ends_with(".ValueInt.list.element")
                || matches!(
                    path.strip_prefix(SPAN),
                    Some("HttpStatusCode" | "DroppedEventsCount" | "DroppedLinksCount")
                );
            Some(if plain {
                Encoding::PLAIN
            } else {
                Encoding::DELTA_BINARY_PACKED
            })
        }
        _ if is_dictionary_column(path) => None,
        _ => Some(Encoding::DELTA_LENGTH_BYTE_ARRAY),
    };
    ColumnSettings {
        compression,
        encoding,
    }
}

fn is_dictionary_column(path: &str) -> bool {
    if matches!(path, "RootServiceName" | "RootSpanName")
        || path.ends_with(".Attrs.list.element.Key")
        || path.ends_with(".Attrs.list.element.Value.list.element")
    {
        return true;
    }
    if let Some(resource_field) = path.strip_prefix(RESOURCE) {
        return resource_field.starts_with("DedicatedAttributes.")
            || matches!(
                resource_field,
                "ServiceName"
                    | "Cluster"
                    | "Namespace"
                    | "Pod"
                    | "Container"
                    | "K8sClusterName"
                    | "K8sNamespaceName"
                    | "K8sPodName"
                    | "K8sContainerName"
            );
    }
    if let Some(scope_field) = path.strip_prefix(SCOPE) {
        return matches!(scope_field, "Name" | "Version");
    }
    if let Some(span_field) = path.strip_prefix(SPAN) {
        return span_field.starts_with("DedicatedAttributes.")
            || matches!(
                span_field,
                "Name" | "Events.list.element.Name" | "HttpMethod" | "HttpUrl"
            );
    }
    false
}
