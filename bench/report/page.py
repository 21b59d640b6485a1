"""The leaderboard page's building blocks: its inline style and sorting script, escaped text, cells that
sort by a value and fold long text, sortable tables and linked figures (plain HTML, no network)."""
from __future__ import annotations

import html

# Longer cell texts (evidence, the paper's figures) fold into a <details> showing their start.
FOLD_CHARS = 90

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1em auto;max-width:1360px;padding:0 1em;color:#1b1b1b}
h1{font-size:1.5em;margin:.2em 0} h2{margin:1.2em 0 .4em} p.meta{margin:.2em 0 .6em;color:#444}
table{border-collapse:collapse;margin:.6em 0 1em;font-variant-numeric:tabular-nums;width:100%}
th,td{border:1px solid #ccd;padding:.25em .45em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef1f7;cursor:pointer;user-select:none;font-size:13px}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right} td.prov{font-size:12px;color:#555} td.id{min-width:6.5em} td.verdict{min-width:7em}
tr:nth-child(even) td{background:#fafbfd} tr:target td{background:#fff6d6}
details summary{cursor:pointer} td details summary{color:#333}
figure{margin:.5em 0} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:12px;color:#444;max-width:1000px}
.plots figure{display:inline-block;vertical-align:top;max-width:440px;margin:.4em}
.note{color:#555;font-style:italic}
.badge{display:inline-block;border-radius:3px;padding:0 .4em;font-size:12px;font-weight:600;white-space:nowrap}
.v-reproduced{color:#11632a;background:#dcf3e3} .v-not-reproduced{color:#8a1c1c;background:#fbe0e0}
.v-inconclusive{color:#7a5200;background:#fdf0cf} .v-invalid{color:#5b1a77;background:#efe0f7}
.v-not-measured,.v-not-applicable{color:#555;background:#ececec}
td.verdict{font-weight:600}
#scorecard .papers{display:grid;grid-template-columns:repeat(auto-fit,minmax(400px,1fr));gap:.8em}
.paper{border:1px solid #ccd;border-radius:6px;padding:.5em .7em;min-width:0;background:#fcfdff}
.paper h3{font-size:15px;margin:0 0 .1em} .paper .cite{font-size:12px;color:#555;margin:0 0 .3em}
.score{margin:.2em 0 0;font-size:12.5px} .score th,.score td{border:none;border-top:1px solid #e3e6ee;
 padding:.1em .3em;background:none;cursor:default;vertical-align:middle}
.score th{font-weight:normal;text-align:left;vertical-align:bottom} .score th.g{width:1%;min-width:7em}
.score th.g div{max-width:12em} .score th.g .m{font-size:11px;color:#555} .score .counts{margin-top:.15em}
.score td.c{max-width:0;width:100%} .score td.c a{display:block;overflow:hidden;text-overflow:ellipsis;
 white-space:nowrap;color:inherit;text-decoration:none} .score td.c a:hover{text-decoration:underline}
.score td.targeted{font-weight:600} .score td a{text-decoration:none}
"""

SCRIPT = """
function sortValue(td){const v=td.dataset.sort;return v===undefined?td.textContent.trim():v;}
function sortTable(th,dir){
  const table=th.closest('table'),tbody=table.tBodies[0];
  const idx=Array.prototype.indexOf.call(th.parentNode.children,th);
  const asc=dir?dir==='asc':th.getAttribute('aria-sort')!=='ascending';
  const rows=Array.from(tbody.rows);
  rows.sort(function(a,b){
    const x=sortValue(a.cells[idx]),y=sortValue(b.cells[idx]);
    if(x===''||y===''){return (x==='')-(y==='');}  // missing values always last
    const nx=Number(x),ny=Number(y);
    const c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));
    return asc?c:-c;});
  rows.forEach(function(r){tbody.appendChild(r);});
  table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',asc?'ascending':'descending');
}
document.querySelectorAll('table.sortable th').forEach(function(th){
  th.addEventListener('click',function(){sortTable(th);});});
(function(){
  const q=new URLSearchParams(window.location.search),key=q.get('sort');
  if(!key){return;}
  const dir=q.get('dir')==='desc'?'desc':'asc';
  let n=0;
  document.querySelectorAll('table.sortable th').forEach(function(th){
    if(th.dataset.key===key){sortTable(th,dir);n++;}});
  document.body.setAttribute('data-sorted',key+':'+dir+':'+n);
})();
"""


def escape(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute."""
    return html.escape(str(text), quote=True)


def th(label: str, key: str, title: str = "") -> str:
    """A sortable header; ``key`` is what ``?sort=<key>`` names."""
    return f'<th data-key="{escape(key)}" title="{escape(title or "click to sort")}">{escape(label)}</th>'


def td(text: object, sort: object = None, cls: str = "", fold: bool = False) -> str:
    """A cell; with ``fold``, a text longer than FOLD_CHARS shows its start and opens to the rest."""
    sort_attr = "" if sort is None else f' data-sort="{escape(sort)}"'
    cls_attr = f' class="{cls}"' if cls else ""
    text = str(text)
    if fold and len(text) > FOLD_CHARS:
        cut = text.rfind(" ", 0, FOLD_CHARS)
        body = (f"<details><summary>{escape(text[:cut if cut > 20 else FOLD_CHARS])} …</summary>"
                f"{escape(text)}</details>")
    else:
        body = escape(text)
    return f"<td{cls_attr}{sort_attr}>{body}</td>"


def table(table_id: str, head: list[str], body: list[str]) -> str:
    """A table that sorts by a click on a header."""
    return (f'<table class="sortable" id="{escape(table_id)}"><thead><tr>{"".join(head)}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table>')


def figure(src: str, caption_text: str, alt: str) -> str:
    """A lazy-loaded image linked to its file, with a caption."""
    return (f'<figure><a href="{escape(src)}"><img loading="lazy" alt="{escape(alt)}" src="{escape(src)}"></a>'
            f"<figcaption>{escape(caption_text)}</figcaption></figure>")
