using System.Net;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Imaging;

/// <summary>
/// The cells of an X/Y/Z plot with their axis names and labels, independent of how the cells are generated:
/// a pipeline fills <see cref="this[int, int, int]"/> as it goes, a notebook shows <see cref="ToHtml"/>, and
/// <see cref="ToImage"/> / <see cref="SavePng"/> compose the single annotated PNG (see <see cref="GridCompositor"/>).
/// The cell images are owned by this object and disposed with it.
/// </summary>
public sealed class GridResult : IDisposable
{
    readonly Image<Rgb24>?[,,] _cells; // [z, y, x]

    /// <summary>Creates an empty grid. <paramref name="zLabels"/> may be empty for a plain X/Y grid.</summary>
    public GridResult(
        string xAxisName, IReadOnlyList<string> xLabels,
        string yAxisName, IReadOnlyList<string> yLabels,
        string zAxisName = "", IReadOnlyList<string>? zLabels = null)
    {
        ArgumentNullException.ThrowIfNull(xLabels);
        ArgumentNullException.ThrowIfNull(yLabels);
        XAxisName = xAxisName ?? "";
        YAxisName = yAxisName ?? "";
        ZAxisName = zAxisName ?? "";
        XLabels = xLabels.Count > 0 ? [.. xLabels] : [""];
        YLabels = yLabels.Count > 0 ? [.. yLabels] : [""];
        ZLabels = zLabels is { Count: > 0 } ? [.. zLabels] : [];
        _cells = new Image<Rgb24>?[Math.Max(1, ZLabels.Count), YLabels.Count, XLabels.Count];
    }

    /// <summary>Creates an empty grid from parsed axes; labels are formatted like A1111 ("Steps: 20", prompt S/R shows the value only).</summary>
    public static GridResult FromAxes(XyzAxis x, XyzAxis? y = null, XyzAxis? z = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        return new GridResult(x.Name, x.Labels(), y?.Name ?? "", y?.Labels() ?? [], z?.Name ?? "", z?.Labels());
    }

    /// <summary>X axis name (columns).</summary>
    public string XAxisName { get; }
    /// <summary>Y axis name (rows).</summary>
    public string YAxisName { get; }
    /// <summary>Z axis name (sub-grids); empty when none.</summary>
    public string ZAxisName { get; }
    /// <summary>Column labels (at least one, possibly "").</summary>
    public IReadOnlyList<string> XLabels { get; }
    /// <summary>Row labels (at least one, possibly "").</summary>
    public IReadOnlyList<string> YLabels { get; }
    /// <summary>Sub-grid titles; empty when there is no Z axis.</summary>
    public IReadOnlyList<string> ZLabels { get; }

    /// <summary>Number of sub-grids (1 without a Z axis).</summary>
    public int ZCount => _cells.GetLength(0);

    /// <summary>The cell at column <paramref name="x"/>, row <paramref name="y"/>, sub-grid <paramref name="z"/>; null until set.
    /// Setting disposes the image it replaces.</summary>
    public Image<Rgb24>? this[int x, int y, int z = 0]
    {
        get => _cells[CheckIndex(z, ZCount, "z"), CheckIndex(y, YLabels.Count, "y"), CheckIndex(x, XLabels.Count, "x")];
        set
        {
            ref var slot = ref _cells[CheckIndex(z, ZCount, "z"), CheckIndex(y, YLabels.Count, "y"), CheckIndex(x, XLabels.Count, "x")];
            if (!ReferenceEquals(slot, value)) slot?.Dispose();
            slot = value;
        }
    }

    /// <summary>True when every cell has an image.</summary>
    public bool IsComplete
    {
        get
        {
            foreach (var c in _cells)
                if (c == null) return false;
            return true;
        }
    }

    /// <summary>Composes the annotated grid image (one PNG-ready picture; Z sub-grids side by side).</summary>
    public Image<Rgb24> ToImage(GridOptions? options = null)
    {
        var cells = new List<IReadOnlyList<IReadOnlyList<Image<Rgb24>?>>>();
        for (int z = 0; z < ZCount; z++)
        {
            var rows = new List<IReadOnlyList<Image<Rgb24>?>>();
            for (int y = 0; y < YLabels.Count; y++)
            {
                var row = new List<Image<Rgb24>?>();
                for (int x = 0; x < XLabels.Count; x++) row.Add(_cells[z, y, x]);
                rows.Add(row);
            }
            cells.Add(rows);
        }
        bool hasColumns = XLabels.Any(l => l.Length > 0);
        bool hasRows = YLabels.Any(l => l.Length > 0);
        return GridCompositor.ComposeXyz(cells, hasColumns ? XLabels : null, hasRows ? YLabels : null,
            ZLabels.Count > 0 ? ZLabels : null, options);
    }

    /// <summary>Composes the grid and saves it as a PNG (atomically), with an optional A1111 infotext.</summary>
    public void SavePng(string path, GenerationParameters? parameters = null, GridOptions? options = null)
    {
        using var image = ToImage(options);
        PngInfo.Save(image, path, parameters);
    }

    /// <summary>
    /// An HTML rendering for notebooks: one &lt;table&gt; per sub-grid (caption = Z label), a header row with the X
    /// labels, a leading column with the Y labels, and each cell as an inline base64 PNG &lt;img&gt;.
    /// </summary>
    public string ToHtml()
    {
        var sb = new StringBuilder();
        bool multi = ZCount > 1 || ZLabels.Count > 0;
        if (multi) sb.Append("<div style=\"display:flex;gap:16px;align-items:flex-start\">");
        for (int z = 0; z < ZCount; z++)
        {
            sb.Append("<table style=\"border-collapse:collapse;text-align:center\">");
            if (ZLabels.Count > 0)
                sb.Append("<caption>").Append(Enc(ZLabels[z])).Append("</caption>");
            sb.Append("<thead><tr><th>").Append(Enc(CornerText())).Append("</th>");
            foreach (var xl in XLabels) sb.Append("<th>").Append(Enc(xl)).Append("</th>");
            sb.Append("</tr></thead><tbody>");
            for (int y = 0; y < YLabels.Count; y++)
            {
                sb.Append("<tr><th>").Append(Enc(YLabels[y])).Append("</th>");
                for (int x = 0; x < XLabels.Count; x++)
                {
                    var img = _cells[z, y, x];
                    sb.Append("<td>");
                    if (img == null)
                        sb.Append("<span>(not generated)</span>");
                    else
                        sb.Append("<img src=\"data:image/png;base64,")
                          .Append(Convert.ToBase64String(PngInfo.Encode(img, null)))
                          .Append("\" width=\"").Append(img.Width).Append("\" height=\"").Append(img.Height)
                          .Append("\" alt=\"").Append(Enc($"{XLabels[x]} / {YLabels[y]}")).Append("\"/>");
                    sb.Append("</td>");
                }
                sb.Append("</tr>");
            }
            sb.Append("</tbody></table>");
        }
        if (multi) sb.Append("</div>");
        return sb.ToString();
    }

    /// <summary>Disposes all cell images.</summary>
    public void Dispose()
    {
        for (int z = 0; z < _cells.GetLength(0); z++)
            for (int y = 0; y < _cells.GetLength(1); y++)
                for (int x = 0; x < _cells.GetLength(2); x++)
                {
                    _cells[z, y, x]?.Dispose();
                    _cells[z, y, x] = null;
                }
    }

    string CornerText() =>
        (XAxisName.Length, YAxisName.Length) switch
        {
            (0, 0) => "",
            (_, 0) => XAxisName,
            (0, _) => YAxisName,
            _ => $"{YAxisName} \\ {XAxisName}",
        };

    static string Enc(string s) => WebUtility.HtmlEncode(s);

    static int CheckIndex(int i, int count, string axis) =>
        (uint)i < (uint)count ? i : throw new ArgumentOutOfRangeException(axis, i, $"The grid has {count} position(s) on {axis}; valid indices are 0..{count - 1}.");
}
