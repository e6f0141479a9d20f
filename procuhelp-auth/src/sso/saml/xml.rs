//! Untrusted XML, made safe to look at: size, DTD, encoding, depth and comment checks
//! before any parser with entity support (libxml2) sees the document, and small
//! namespace-aware helpers over `roxmltree`.

use roxmltree::{Document, Node, ParsingOptions};

use super::error::SamlError;

/// The largest decoded SAML response we look at. Real responses are a few KiB; Entra's
/// with hundreds of groups stay well below this.
pub(crate) const MAX_XML_BYTES: usize = 256 * 1024;
/// The largest base64 form value: the XML limit in base64 plus room for line breaks.
pub(crate) const MAX_BASE64_BYTES: usize = MAX_XML_BYTES / 3 * 4 + 16 * 1024;
/// The deepest element nesting accepted. A signed response nests about 8 levels; the
/// bound keeps recursive walkers (ours and the signature library's) far from the stack's
/// end.
pub(crate) const MAX_DEPTH: usize = 32;
/// Node count bound for the parser (memory bound on top of the size limit).
const MAX_NODES: u32 = 20_000;

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Refuses what must never reach libxml2: any markup declaration (`<!DOCTYPE`,
/// `<!ENTITY`, ...), which is where XXE and entity expansion live. Comments and CDATA
/// sections are the only `<!` constructs let through here (comments are refused later,
/// with their own error).
pub(crate) fn refuse_declarations(xml: &str) -> Result<(), SamlError> {
    let bytes = xml.as_bytes();
    let mut from = 0;
    while let Some(pos) = xml[from..].find("<!") {
        let at = from + pos;
        let rest = &bytes[at + 2..];
        if !(rest.starts_with(b"--") || rest.starts_with(b"[CDATA[")) {
            return Err(SamlError::DtdForbidden);
        }
        from = at + 2;
    }
    Ok(())
}

/// Only UTF-8: roxmltree reads the text as UTF-8 while libxml2 would honour a declared
/// encoding, and two parsers that read different characters are a signature bypass
/// waiting to happen.
fn refuse_other_encodings(xml: &str) -> Result<(), SamlError> {
    let Some(decl) = xml.strip_prefix("<?xml") else {
        return Ok(());
    };
    let decl = decl.split("?>").next().unwrap_or_default();
    if let Some(pos) = decl.find("encoding") {
        let value = decl[pos + "encoding".len()..]
            .trim_start()
            .trim_start_matches('=')
            .trim_start();
        let value = value.trim_start_matches(['"', '\'']);
        let name = value.split(['"', '\'']).next().unwrap_or_default();
        if !(name.eq_ignore_ascii_case("utf-8") || name.eq_ignore_ascii_case("utf8")) {
            return Err(SamlError::MalformedXml);
        }
    }
    Ok(())
}

/// Parses untrusted XML after the checks above, then refuses deep nesting, comments and
/// processing instructions.
pub(crate) fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(SamlError::TooLarge);
    }
    refuse_declarations(xml)?;
    refuse_other_encodings(xml)?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(xml, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SamlError::DtdForbidden,
        _ => SamlError::MalformedXml,
    })?;
    check_depth_and_nodes(&doc)?;
    Ok(doc)
}

fn check_depth_and_nodes(doc: &Document<'_>) -> Result<(), SamlError> {
    // Depth by node id: a node's parent comes before it in document order, so one pass
    // fills the table without recursion.
    let mut depth = vec![0usize; doc.descendants().count() + 1];
    for node in doc.descendants() {
        if node.is_comment() || node.is_pi() {
            return Err(SamlError::CommentOrInstruction);
        }
        // The document node is depth 0, the root element 1.
        let d = match node.parent() {
            None => 0,
            Some(p) => depth.get(p.id().get_usize()).copied().unwrap_or(0) + 1,
        };
        if node.is_element() && d > MAX_DEPTH {
            return Err(SamlError::TooDeep);
        }
        if let Some(slot) = depth.get_mut(node.id().get_usize()) {
            *slot = d;
        }
    }
    Ok(())
}

/// Whether `node` is the element `{ns}name`.
pub(crate) fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

/// Element children named `{ns}name`.
pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The first element child named `{ns}name`.
pub(crate) fn child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> Option<Node<'a, 'i>> {
    children(node, ns, name).next()
}

/// All descendant elements (and the node itself) named `{ns}name`.
pub(crate) fn descendants<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.descendants().filter(move |c| is(*c, ns, name))
}

/// The complete text of a text-only element: every text child concatenated, refusing an
/// element child (comments were refused at parse time), so a value is never read from
/// its first text node only.
pub(crate) fn text(node: Node<'_, '_>, what: &'static str) -> Result<String, SamlError> {
    let mut out = String::new();
    for c in node.children() {
        if c.is_text() {
            out.push_str(c.text().unwrap_or_default());
        } else {
            return Err(SamlError::Invalid(what));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_refused_comments_and_cdata_pass_this_check() {
        assert_eq!(
            refuse_declarations("<!DOCTYPE a><a/>"),
            Err(SamlError::DtdForbidden)
        );
        assert_eq!(
            refuse_declarations("<a><!ENTITY x 'y'></a>"),
            Err(SamlError::DtdForbidden)
        );
        assert_eq!(
            refuse_declarations("<a><!doctype></a>"),
            Err(SamlError::DtdForbidden)
        );
        assert_eq!(refuse_declarations("<a>x<!"), Err(SamlError::DtdForbidden));
        assert!(refuse_declarations("<a><!-- c --><![CDATA[x]]></a>").is_ok());
    }

    #[test]
    fn parse_refuses_comments_depth_and_foreign_encodings() {
        assert_eq!(
            parse("<a><!-- c --></a>").err(),
            Some(SamlError::CommentOrInstruction)
        );
        assert_eq!(
            parse("<a><?pi x?></a>").err(),
            Some(SamlError::CommentOrInstruction)
        );
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(parse(&deep).err(), Some(SamlError::TooDeep));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        assert_eq!(
            parse("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>").err(),
            Some(SamlError::MalformedXml)
        );
        assert!(parse("<?xml version=\"1.0\" encoding='UTF-8'?><a/>").is_ok());
        assert_eq!(parse("<a>").err(), Some(SamlError::MalformedXml));
    }

    #[test]
    fn text_reads_the_whole_value_or_refuses() {
        let doc = parse("<a>x<![CDATA[y]]>z</a>").unwrap();
        assert_eq!(text(doc.root_element(), "a").unwrap(), "xyz");
        let doc = parse("<a>x<b/>z</a>").unwrap();
        assert_eq!(text(doc.root_element(), "a"), Err(SamlError::Invalid("a")));
    }
}
