using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace DreamBooth.Imaging;

/// <summary>Layout and colours of a composed grid.</summary>
public sealed record GridOptions
{
    /// <summary>Integer scale of the 8x8 bitmap font; null picks one from the cell size (1 up to 192 px cells, 2 up to 384...).</summary>
    public int? FontScale { get; init; }
    /// <summary>Gap in pixels between cells and between Z sub-grids (A1111's "Grid margins (px)"). Default 0.</summary>
    public int Margin { get; init; }
    /// <summary>Padding in pixels around label text. Default 6.</summary>
    public int LabelPadding { get; init; } = 6;
    /// <summary>Background (label areas, margins). Default white.</summary>
    public Rgb24 Background { get; init; } = new(255, 255, 255);
    /// <summary>Label text colour. Default near-black.</summary>
    public Rgb24 TextColor { get; init; } = new(20, 20, 20);
    /// <summary>Fill for cells that have no image yet. Default light grey.</summary>
    public Rgb24 EmptyCellColor { get; init; } = new(224, 224, 224);

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public void Validate()
    {
        if (FontScale is < 1 or > 32) throw new ArgumentException($"{nameof(FontScale)} must be between 1 and 32 (got {FontScale}); leave it null for automatic.", nameof(FontScale));
        if (Margin is < 0 or > 1000) throw new ArgumentException($"{nameof(Margin)} must be between 0 and 1000 pixels (got {Margin}).", nameof(Margin));
        if (LabelPadding is < 0 or > 1000) throw new ArgumentException($"{nameof(LabelPadding)} must be between 0 and 1000 pixels (got {LabelPadding}).", nameof(LabelPadding));
    }

    internal int ScaleFor(int cellWidth, int cellHeight) =>
        FontScale ?? Math.Clamp((int)Math.Ceiling(Math.Min(cellWidth, cellHeight) / 192.0), 1, 32);
}

/// <summary>
/// Composes labelled image grids like AUTOMATIC1111's "X/Y/Z plot" (modules/images.py <c>draw_grid_annotations</c>,
/// scripts/xyz_grid.py): cells in rows and columns, column labels on top and row labels on the left (text wrapped to
/// the cell width), and for a Z axis several such sub-grids side by side, each with its title. Dark text on white,
/// drawn with the embedded <see cref="BitmapFont"/>. Compositing knows nothing about generation: cells are filled by
/// whoever produced them, missing cells are drawn as <see cref="GridOptions.EmptyCellColor"/>.
/// </summary>
public static class GridCompositor
{
    /// <summary>
    /// One grid: <paramref name="cells"/>[row][column] (null = not generated yet), optional labels per column (top),
    /// per row (left) and a title above. All cells must share one size.
    /// </summary>
    public static Image<Rgb24> Compose(
        IReadOnlyList<IReadOnlyList<Image<Rgb24>?>> cells,
        IReadOnlyList<string>? columnLabels = null,
        IReadOnlyList<string>? rowLabels = null,
        string? title = null,
        GridOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(cells);
        return ComposeXyz([cells], columnLabels, rowLabels, title == null ? null : [title], options);
    }

    /// <summary>
    /// Z sub-grids side by side: <paramref name="cells"/>[z][row][column]. <paramref name="titles"/> (one per z, may be
    /// null) are drawn above each sub-grid; column and row labels are repeated on every sub-grid, like A1111.
    /// </summary>
    public static Image<Rgb24> ComposeXyz(
        IReadOnlyList<IReadOnlyList<IReadOnlyList<Image<Rgb24>?>>> cells,
        IReadOnlyList<string>? columnLabels = null,
        IReadOnlyList<string>? rowLabels = null,
        IReadOnlyList<string>? titles = null,
        GridOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(cells);
        options ??= new GridOptions();
        options.Validate();
        var layout = Measure(cells, columnLabels, rowLabels, titles, options);

        var canvas = new Image<Rgb24>(layout.TotalWidth, layout.TotalHeight, options.Background);
        for (int z = 0; z < layout.ZCount; z++)
        {
            int ox = z * (layout.SubWidth + options.Margin);
            if (titles != null)
                BitmapFont.DrawLinesCentered(canvas, layout.TitleLines[z], ox, options.LabelPadding, layout.SubWidth, layout.Scale, options.TextColor);
            int gridTop = layout.TitleHeight + layout.ColumnHeaderHeight;
            int gridLeft = ox + layout.RowHeaderWidth;
            if (columnLabels != null)
            {
                for (int c = 0; c < layout.Columns; c++)
                {
                    var lines = layout.ColumnLines[c];
                    int textH = BitmapFont.MeasureHeight(lines.Count, layout.Scale);
                    int y = layout.TitleHeight + (layout.ColumnHeaderHeight - textH) / 2;
                    BitmapFont.DrawLinesCentered(canvas, lines, gridLeft + c * (layout.CellWidth + options.Margin), y, layout.CellWidth, layout.Scale, options.TextColor);
                }
            }
            if (rowLabels != null)
            {
                for (int r = 0; r < layout.Rows; r++)
                {
                    var lines = layout.RowLines[r];
                    int textH = BitmapFont.MeasureHeight(lines.Count, layout.Scale);
                    int y = gridTop + r * (layout.CellHeight + options.Margin) + Math.Max(0, (layout.CellHeight - textH) / 2);
                    BitmapFont.DrawLinesCentered(canvas, lines, ox + options.LabelPadding, y, layout.RowHeaderWidth - 2 * options.LabelPadding, layout.Scale, options.TextColor);
                }
            }
            for (int r = 0; r < layout.Rows; r++)
            {
                for (int c = 0; c < layout.Columns; c++)
                {
                    int x = gridLeft + c * (layout.CellWidth + options.Margin);
                    int y = gridTop + r * (layout.CellHeight + options.Margin);
                    var cell = cells[z][r][c];
                    if (cell != null)
                        canvas.Mutate(ctx => ctx.DrawImage(cell, new Point(x, y), 1f));
                    else
                        FillRect(canvas, x, y, layout.CellWidth, layout.CellHeight, options.EmptyCellColor);
                }
            }
        }
        return canvas;
    }

    internal sealed record Layout(
        int ZCount, int Rows, int Columns, int CellWidth, int CellHeight, int Scale,
        int TitleHeight, int ColumnHeaderHeight, int RowHeaderWidth, int SubWidth, int SubHeight,
        int TotalWidth, int TotalHeight,
        List<List<string>> TitleLines, List<List<string>> ColumnLines, List<List<string>> RowLines);

    /// <summary>Computes the grid geometry (also used by tests to find the label areas).</summary>
    internal static Layout Measure(
        IReadOnlyList<IReadOnlyList<IReadOnlyList<Image<Rgb24>?>>> cells,
        IReadOnlyList<string>? columnLabels, IReadOnlyList<string>? rowLabels, IReadOnlyList<string>? titles, GridOptions options)
    {
        int zCount = cells.Count;
        if (zCount == 0) throw new ArgumentException("A grid needs at least one sub-grid.", nameof(cells));
        int rows = cells[0].Count;
        if (rows == 0) throw new ArgumentException("A grid needs at least one row.", nameof(cells));
        int cols = cells[0][0].Count;
        if (cols == 0) throw new ArgumentException("A grid needs at least one column.", nameof(cells));

        int cellW = 0, cellH = 0;
        for (int z = 0; z < zCount; z++)
        {
            if (cells[z].Count != rows)
                throw new ArgumentException($"Sub-grid {z} has {cells[z].Count} rows but sub-grid 0 has {rows}; all sub-grids need the same shape.", nameof(cells));
            for (int r = 0; r < rows; r++)
            {
                if (cells[z][r].Count != cols)
                    throw new ArgumentException($"Row {r} of sub-grid {z} has {cells[z][r].Count} cells but the grid has {cols} columns.", nameof(cells));
                foreach (var img in cells[z][r])
                {
                    if (img == null) continue;
                    if (cellW == 0) (cellW, cellH) = (img.Width, img.Height);
                    else if (img.Width != cellW || img.Height != cellH)
                        throw new ArgumentException(
                            $"Grid cells must share one size: found {img.Width}x{img.Height} and {cellW}x{cellH}. Resize the images first.", nameof(cells));
                }
            }
        }
        if (cellW == 0)
            throw new ArgumentException("No cell has an image yet, so the cell size is unknown; fill at least one cell.", nameof(cells));
        if (columnLabels != null && columnLabels.Count != cols)
            throw new ArgumentException($"{cols} columns but {columnLabels.Count} column labels.", nameof(columnLabels));
        if (rowLabels != null && rowLabels.Count != rows)
            throw new ArgumentException($"{rows} rows but {rowLabels.Count} row labels.", nameof(rowLabels));
        if (titles != null && titles.Count != zCount)
            throw new ArgumentException($"{zCount} sub-grids but {titles.Count} titles.", nameof(titles));

        int scale = options.ScaleFor(cellW, cellH);
        int pad = options.LabelPadding;
        int m = options.Margin;
        int textWidth = Math.Max(BitmapFont.GlyphSize * scale, cellW - 2 * pad);

        var columnLines = (columnLabels ?? []).Select(l => BitmapFont.Wrap(l, textWidth, scale)).ToList();
        int colHeader = columnLabels == null ? 0 : BitmapFont.MeasureHeight(columnLines.Max(l => l.Count), scale) + 2 * pad;

        // Row labels may use up to 16 characters per line even when cells are narrower (tiny-model grids).
        int rowTextWidth = Math.Max(textWidth, 16 * BitmapFont.GlyphSize * scale);
        var rowLines = (rowLabels ?? []).Select(l => BitmapFont.Wrap(l, rowTextWidth, scale)).ToList();
        int rowHeader = rowLabels == null ? 0
            : rowLines.SelectMany(l => l).Select(s => BitmapFont.MeasureWidth(s, scale)).DefaultIfEmpty(0).Max() + 2 * pad;

        int gridW = rowHeader + cols * cellW + (cols - 1) * m;
        int gridH = colHeader + rows * cellH + (rows - 1) * m;
        var titleLines = (titles ?? []).Select(t => BitmapFont.Wrap(t, Math.Max(BitmapFont.GlyphSize * scale, gridW - 2 * pad), scale)).ToList();
        int titleH = titles == null ? 0 : BitmapFont.MeasureHeight(titleLines.Max(l => l.Count), scale) + 2 * pad;

        int subW = gridW, subH = titleH + gridH;
        long totalW = (long)zCount * subW + (long)(zCount - 1) * m;
        if (totalW > 65535 || subH > 65535)
            throw new ArgumentException($"The grid would be {totalW}x{subH} pixels, more than PNG viewers handle well; use fewer or smaller cells.", nameof(cells));
        return new Layout(zCount, rows, cols, cellW, cellH, scale, titleH, colHeader, rowHeader, subW, subH,
            (int)totalW, subH, titleLines, columnLines, rowLines);
    }

    static void FillRect(Image<Rgb24> image, int x, int y, int w, int h, Rgb24 color)
    {
        for (int yy = Math.Max(0, y); yy < Math.Min(image.Height, y + h); yy++)
            for (int xx = Math.Max(0, x); xx < Math.Min(image.Width, x + w); xx++)
                image[xx, yy] = color;
    }
}
