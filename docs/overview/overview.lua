-- Pandoc Lua filter for the security overview (scripts/overview.sh).
--
-- The overview is several Markdown files concatenated into one document. Each file has
-- exactly one level-1 heading; this filter
--   * gives the n-th level-1 heading the id `doc-<name of the n-th file>` (the metadata
--     field `overview_files`: the file names without `.md`, comma-separated, in order),
--     and fails the build when the count differs;
--   * turns a link to one of those files (`threat-model.md`, `encryption.md#rotation`)
--     into a link inside the document (`#doc-threat-model`, `#rotation`);
--   * turns any other relative link (a document that is not part of the overview) into
--     its repository path as code, since the HTML is read away from the repository.
local stringify = pandoc.utils.stringify

-- "docs/" + a path relative to docs/, with "x/.." collapsed.
local function repo_path(path)
  local parts = {}
  for seg in ("docs/" .. path):gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then
      table.remove(parts)
    elseif seg ~= "." then
      table.insert(parts, seg)
    end
  end
  return table.concat(parts, "/")
end

function Pandoc(doc)
  local files, included = {}, {}
  for name in stringify(doc.meta.overview_files or ""):gmatch("[^,]+") do
    table.insert(files, name)
    included[name] = true
  end
  if #files == 0 then
    error("overview.lua: the metadata field overview_files is empty")
  end

  local h1 = 0
  for _, block in ipairs(doc.blocks) do
    if block.t == "Header" and block.level == 1 then
      h1 = h1 + 1
      if files[h1] then
        block.identifier = "doc-" .. files[h1]
      end
    end
  end
  if h1 ~= #files then
    error(string.format(
      "overview.lua: %d files but %d level-1 headings: each file must have exactly one",
      #files, h1))
  end

  local function link(l)
    local target = l.target
    if target == "" or target:match("^#") or target:match("^%a[%w+.-]*:") then
      return nil
    end
    local path, fragment = target:match("^([^#]*)#?(.*)$")
    local name = path:match("^([^/]+)%.md$")
    if name and included[name] then
      l.target = (fragment ~= "" and ("#" .. fragment)) or ("#doc-" .. name)
      return l
    end
    local where = repo_path(path)
    local text = stringify(l.content)
    if text == path or text == where then
      return pandoc.Code(where)
    end
    local out = pandoc.List(l.content)
    out:extend({ pandoc.Str(" ("), pandoc.Code(where), pandoc.Str(")") })
    return out
  end

  local all = pandoc.Div(doc.blocks)
  if all.walk then -- pandoc >= 2.17 has walk methods; pandoc.walk_block is the older way
    all = all:walk({ Link = link })
  else
    all = pandoc.walk_block(all, { Link = link })
  end
  doc.blocks = all.content
  return doc
end
