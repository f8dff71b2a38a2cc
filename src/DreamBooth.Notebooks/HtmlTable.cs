using System.Globalization;
using System.Reflection;
using System.Text;

namespace DreamBooth.Notebooks;

/// <summary>
/// A plain HTML table (header row + text cells) for small listings in notebooks: caption rules, exported files, run
/// records. <see cref="From{T}"/> makes one from any objects, one column per public property (anonymous types work), so
/// <c>HtmlTable.From(files.Select(f =&gt; new { file = f.Name, size = f.Length }))</c> shows as a table instead of a tree.
/// </summary>
/// <param name="Headers">Column titles.</param>
/// <param name="Rows">One list of cell texts per row (each as long as <paramref name="Headers"/>).</param>
public sealed record HtmlTable(IReadOnlyList<string> Headers, IReadOnlyList<IReadOnlyList<string>> Rows)
{
    /// <summary>One row per item, one column per public instance property (in declaration order).</summary>
    public static HtmlTable From<T>(IEnumerable<T> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        var props = typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0).ToList();
        if (props.Count == 0)
            throw new ArgumentException($"{typeof(T).Name} has no public properties to show as columns; project the items first (items.Select(x => new {{ name = x.A, value = x.B }})).", nameof(items));
        var rows = items.Select(item => (IReadOnlyList<string>)props.Select(p => Cell(p.GetValue(item))).ToList()).ToList();
        return new HtmlTable(props.Select(p => p.Name).ToList(), rows);
    }

    static string Cell(object? value) => value switch
    {
        null => "",
        double d => d.ToString("0.####", CultureInfo.InvariantCulture),
        float f => f.ToString("0.####", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>The table as HTML (cells are HTML-encoded).</summary>
    public string ToHtml()
    {
        ArgumentNullException.ThrowIfNull(Headers);
        ArgumentNullException.ThrowIfNull(Rows);
        for (int r = 0; r < Rows.Count; r++)
            if (Rows[r].Count != Headers.Count)
                throw new ArgumentException($"HtmlTable row {r} has {Rows[r].Count} cells but there are {Headers.Count} headers; give one cell per column.", nameof(Rows));
        var sb = new StringBuilder("<table style=\"border-collapse:collapse;font-size:13px\"><thead><tr>");
        foreach (var h in Headers)
            sb.Append("<th style=\"text-align:left;padding:2px 8px;border-bottom:1px solid #999\">").Append(NotebookHtml.Enc(h)).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        foreach (var row in Rows)
        {
            sb.Append("<tr>");
            foreach (var c in row)
                sb.Append("<td style=\"text-align:left;vertical-align:top;padding:2px 8px;border-bottom:1px solid #ddd\">").Append(NotebookHtml.Enc(c)).Append("</td>");
            sb.Append("</tr>");
        }
        return sb.Append("</tbody></table>").ToString();
    }
}
