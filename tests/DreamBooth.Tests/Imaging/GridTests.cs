using DreamBooth.Imaging;
using DreamBooth.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.Imaging;

public class GridTests
{
    static Image<Rgb24> Solid(int w, int h, Rgb24 c) => new(w, h, c);

    static int DarkPixels(Image<Rgb24> img, int x0, int y0, int x1, int y1)
    {
        int n = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
            {
                var p = img[x, y];
                if (p.R < 80 && p.G < 80 && p.B < 80) n++;
            }
        return n;
    }

    [Fact]
    public void BitmapFont_FoldsTypographyAndAccentsToAsciiInsteadOfQuestionMarks()
    {
        Assert.Equal("\"a zwx diamond ...\" after DreamBooth", BitmapFont.ToPrintable("\u201Ca zwx diamond \u2026\u201D after DreamBooth"));
        Assert.Equal("cafe creme - 4 x 4, it's", BitmapFont.ToPrintable("caf\u00E9 cr\u00E8me \u2014 4 \u00D7 4, it\u2019s"));
        Assert.Equal("a b", BitmapFont.ToPrintable("a\u00A0b"));
        Assert.Equal("plain ascii", BitmapFont.ToPrintable("plain ascii"));
        Assert.Equal("\u732B", BitmapFont.ToPrintable("\u732B")); // no ASCII spelling: left for the '?' glyph
        // measuring and drawing use the folded text: "…" is three dots wide and drawn as dots, not '?'
        Assert.Equal(3 * 8, BitmapFont.MeasureWidth("\u2026", 1));
        using var dots = Solid(24, 8, new Rgb24(255, 255, 255));
        using var folded = Solid(24, 8, new Rgb24(255, 255, 255));
        BitmapFont.DrawText(dots, "...", 0, 0, 1, new Rgb24(0, 0, 0));
        BitmapFont.DrawText(folded, "\u2026", 0, 0, 1, new Rgb24(0, 0, 0));
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 24; x++)
                Assert.Equal(dots[x, y], folded[x, y]);
        Assert.Equal(["cafe", "creme"], BitmapFont.Wrap("caf\u00E9 cr\u00E8me", 40, 1));
    }

    [Fact]
    public void BitmapFont_WrapsToWidthAndDrawsGlyphs()
    {
        var lines = BitmapFont.Wrap("a photo of sks dog in a bucket", 10 * 8, 1);
        Assert.All(lines, l => Assert.True(l.Length <= 10));
        Assert.Equal("a photo of sks dog in a bucket", string.Join(" ", lines));
        Assert.Equal(["abcdefghij", "klm"], BitmapFont.Wrap("abcdefghijklm", 80, 1));
        Assert.Equal(["one", "two"], BitmapFont.Wrap("one\ntwo", 800, 2));

        using var img = Solid(16, 8, new Rgb24(255, 255, 255));
        BitmapFont.DrawText(img, "A", 0, 0, 1, new Rgb24(0, 0, 0));
        // 'A' row 0 = 0x0C: bits 2 and 3 set (leftmost pixel = bit 0)
        Assert.Equal(new Rgb24(0, 0, 0), img[2, 0]);
        Assert.Equal(new Rgb24(0, 0, 0), img[3, 0]);
        Assert.Equal(new Rgb24(255, 255, 255), img[1, 0]);
        Assert.Equal(new Rgb24(255, 255, 255), img[4, 0]);
        // row 7 of 'A' is empty
        Assert.Equal(0, DarkPixels(img, 0, 7, 8, 8));
        // nothing drawn in the second glyph slot
        Assert.Equal(0, DarkPixels(img, 8, 0, 16, 8));
    }

    [Fact]
    public void Compose_SizesAndLabelAreas()
    {
        var colors = new[] { new Rgb24(200, 30, 30), new Rgb24(30, 200, 30), new Rgb24(30, 30, 200) };
        var cells = new List<IReadOnlyList<Image<Rgb24>?>>
        {
            colors.Select(c => (Image<Rgb24>?)Solid(96, 48, c)).ToList(),
            colors.Select(c => (Image<Rgb24>?)Solid(96, 48, c)).ToList(),
        };
        var opts = new GridOptions { FontScale = 1, LabelPadding = 4, Margin = 2 };
        using var grid = GridCompositor.Compose(cells, ["Steps: 10", "Steps: 20", "Steps: 30"], ["Seed: 1", "Seed: 2"], options: opts);

        // Column header: "Steps: 10" (72 px) fits in 96 - 2*4, so one line of 8 px + 2*4 padding = 16.
        // Row header: widest label "Seed: 1" = 7 chars * 8 + 2*4 = 64.
        int header = 16, rowHeader = 64;
        Assert.Equal(rowHeader + 3 * 96 + 2 * 2, grid.Width);
        Assert.Equal(header + 2 * 48 + 1 * 2, grid.Height);

        Assert.True(DarkPixels(grid, rowHeader, 0, grid.Width, header) > 50, "column labels should draw dark pixels above the cells");
        Assert.True(DarkPixels(grid, 0, header, rowHeader, grid.Height) > 50, "row labels should draw dark pixels left of the cells");
        Assert.Equal(0, DarkPixels(grid, 0, 0, rowHeader, header)); // empty corner
        // cells land where expected, margin stays background
        Assert.Equal(colors[0], grid[rowHeader + 10, header + 10]);
        Assert.Equal(colors[2], grid[rowHeader + 2 * (96 + 2) + 95, header + 48 + 2 + 47]);
        Assert.Equal(new Rgb24(255, 255, 255), grid[rowHeader + 96, header + 5]);
        foreach (var row in cells) foreach (var c in row) c!.Dispose();
    }

    [Fact]
    public void Compose_LongLabelsWrapToCellWidth()
    {
        var cells = new List<IReadOnlyList<Image<Rgb24>?>> { new List<Image<Rgb24>?> { Solid(64, 64, new Rgb24(9, 9, 9)) } };
        var opts = new GridOptions { FontScale = 1, LabelPadding = 4 };
        using var one = GridCompositor.Compose(cells, ["short"], options: opts);
        using var wrapped = GridCompositor.Compose(cells, ["a much longer label that cannot fit on one line"], options: opts);
        Assert.Equal(64, wrapped.Width); // text never widens a column
        Assert.True(wrapped.Height > one.Height + 20, "long label should wrap onto several lines");
        cells[0][0]!.Dispose();
    }

    [Fact]
    public void GridResult_XyzSubGridsSideBySide_WithTitlesAndHtml()
    {
        var x = XyzAxis.Parse(XyzAxisKind.CfgScale, "5, 7.5");
        var y = XyzAxis.Parse(XyzAxisKind.Steps, "10-30 (+10)");
        var z = XyzAxis.Parse(XyzAxisKind.Sampler, "Euler a, DDIM");
        using var result = GridResult.FromAxes(x, y, z);
        Assert.Equal(["CFG Scale: 5.0", "CFG Scale: 7.5"], result.XLabels);
        Assert.Equal(3, result.YLabels.Count);
        Assert.Equal(2, result.ZCount);
        Assert.False(result.IsComplete);

        for (int zi = 0; zi < 2; zi++)
            for (int yi = 0; yi < 3; yi++)
                for (int xi = 0; xi < 2; xi++)
                    if (!(zi == 1 && yi == 2 && xi == 1)) // leave one cell empty
                        result[xi, yi, zi] = Solid(48, 48, new Rgb24((byte)(60 + 90 * xi), (byte)(60 + 60 * yi), (byte)(80 + 120 * zi)));

        var opts = new GridOptions { FontScale = 1, Margin = 8, LabelPadding = 4 };
        using var img = result.ToImage(opts);
        var layout = GridCompositor.Measure(
            [[[result[0, 0, 0], result[1, 0, 0]], [result[0, 1, 0], result[1, 1, 0]], [result[0, 2, 0], result[1, 2, 0]]],
             [[result[0, 0, 1], result[1, 0, 1]], [result[0, 1, 1], result[1, 1, 1]], [result[0, 2, 1], null]]],
            result.XLabels, result.YLabels, result.ZLabels, opts);
        Assert.Equal(2 * layout.SubWidth + 8, img.Width);
        Assert.Equal(layout.SubHeight, img.Height);
        Assert.True(layout.TitleHeight > 0);
        // titles are dark text above each sub-grid
        Assert.True(DarkPixels(img, 0, 0, layout.SubWidth, layout.TitleHeight) > 30);
        Assert.True(DarkPixels(img, layout.SubWidth + 8, 0, img.Width, layout.TitleHeight) > 30);
        // the missing cell is drawn as the empty-cell colour
        int ex = layout.SubWidth + 8 + layout.RowHeaderWidth + 48 + 8 + 20;
        int ey = layout.TitleHeight + layout.ColumnHeaderHeight + 2 * (48 + 8) + 20;
        Assert.Equal(opts.EmptyCellColor, img[ex, ey]);

        var html = result.ToHtml();
        Assert.Equal(2, CountOf(html, "<table"));
        Assert.Equal(11, CountOf(html, "<img src=\"data:image/png;base64,"));
        Assert.Contains("<caption>Sampler: DDIM</caption>", html);
        Assert.Contains("<th>Steps: 20</th>", html);
        Assert.Contains("(not generated)", html);

        // a PNG of the grid round-trips and keeps its infotext
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("grid.png");
        result.SavePng(path, new GenerationParameters { Prompt = "grid", Width = 48, Height = 48 }, opts);
        using var loaded = Image.Load<Rgb24>(path);
        Assert.Equal(img.Width, loaded.Width);
        Assert.Equal("grid", PngInfo.ReadParameters(path)!.Prompt);

        var preview = Environment.GetEnvironmentVariable("DREAMBOOTH_GRID_PREVIEW");
        if (!string.IsNullOrEmpty(preview))
        {
            // Optional visual check: the small grid, and one with 256 px cells and automatic font scale.
            result.SavePng(preview, null, new GridOptions { FontScale = 1, Margin = 8 });
            using var big = GridResult.FromAxes(XyzAxis.Parse(XyzAxisKind.PromptSearchReplace, "sks dog, sks dog wearing a red hat on the beach, watercolor painting of sks dog"),
                XyzAxis.Parse(XyzAxisKind.Seed, "1-2"));
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 2; j++)
                    big[i, j] = Solid(256, 256, new Rgb24((byte)(80 * i), (byte)(100 + 100 * j), 150));
            big.SavePng(Path.ChangeExtension(preview, ".big.png"));
        }
    }

    [Fact]
    public void Compose_RejectsMismatchedCellsAndLabels()
    {
        using var a = Solid(8, 8, new Rgb24(1, 1, 1));
        using var b = Solid(9, 8, new Rgb24(1, 1, 1));
        var ex = Assert.Throws<ArgumentException>(() =>
            GridCompositor.Compose([new List<Image<Rgb24>?> { a, b }]));
        Assert.Contains("9x8", ex.Message);
        Assert.Throws<ArgumentException>(() => GridCompositor.Compose([new List<Image<Rgb24>?> { a }], ["x", "y"]));
        Assert.Throws<ArgumentException>(() => GridCompositor.Compose([new List<Image<Rgb24>?> { null }]));
        Assert.Throws<ArgumentException>(() => new GridOptions { Margin = -1 }.Validate());
    }

    static int CountOf(string s, string sub)
    {
        int n = 0, i = 0;
        while ((i = s.IndexOf(sub, i, StringComparison.Ordinal)) >= 0) { n++; i += sub.Length; }
        return n;
    }
}
