using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>
/// One scene of the tiny world: a shape of a colour and size in a 3x3 grid cell on a coloured background
/// (optionally two copies side by side). Jitter fields move/scale the object slightly inside its cell without
/// changing any attribute a caption names; the dataset samples them, an explicit scene leaves them at zero.
/// </summary>
public sealed record TinyWorldScene(
    ShapeKind Shape,
    NamedColor Color,
    ObjectSize Size,
    GridPosition Position,
    NamedColor Background,
    ObjectCount Count = ObjectCount.One)
{
    /// <summary>Horizontal offset from the cell centre, as a fraction of the image width (|x| ≤ 0.05).</summary>
    public double JitterX { get; init; }

    /// <summary>Vertical offset from the cell centre, as a fraction of the image height (|y| ≤ 0.05).</summary>
    public double JitterY { get; init; }

    /// <summary>Multiplicative scale applied to the size's half-extent (0.9 .. 1.1).</summary>
    public double JitterScale { get; init; } = 1.0;

    /// <summary>Throws when the scene is not renderable (shape colour equals background, jitter out of range).</summary>
    public void Validate()
    {
        if (Color == Background)
            throw new ArgumentException(
                $"TinyWorldScene: the shape colour ({Color}) equals the background; pick a different Background.", nameof(Background));
        if (Math.Abs(JitterX) > 0.05 || Math.Abs(JitterY) > 0.05 || double.IsNaN(JitterX) || double.IsNaN(JitterY))
            throw new ArgumentOutOfRangeException(nameof(JitterX), "TinyWorldScene: JitterX/JitterY must lie in [-0.05, 0.05].");
        if (!(JitterScale >= 0.9 && JitterScale <= 1.1))
            throw new ArgumentOutOfRangeException(nameof(JitterScale), "TinyWorldScene: JitterScale must lie in [0.9, 1.1].");
    }

    /// <summary>The caption of this scene in the given template (all attributes named).</summary>
    public string Caption(CaptionTemplate template = CaptionTemplate.ObjectPositionBackground) => TinyWorldCaptions.Caption(this, template);

    /// <summary>Renders the scene (anti-aliased, 4x4 supersampling) at <paramref name="size"/>x<paramref name="size"/> pixels.</summary>
    public Image<Rgb24> Render(int size = 64)
    {
        Validate();
        var canvas = new Canvas(size, size, TinyWorldPalette.ToRgb(Background));
        foreach (var placement in TinyWorldGeometry.Placements(this))
        {
            var rgb = TinyWorldPalette.ToRgb(Color);
            var shape = Shape;
            canvas.Paint(placement.CenterX, placement.CenterY, placement.HalfExtent,
                (u, v) => ShapeGeometry.Contains(shape, u, v) ? rgb : null);
        }
        return canvas.ToImage();
    }
}

/// <summary>Where objects go: cell centres, half-extents of the sizes, the layout of two copies.</summary>
public static class TinyWorldGeometry
{
    /// <summary>Half-extent of a small object, as a fraction of the image side.</summary>
    public const double SmallHalfExtent = 0.10;

    /// <summary>Half-extent of a large object, as a fraction of the image side.</summary>
    public const double LargeHalfExtent = 0.14;

    /// <summary>Scale applied to each copy when a scene holds two.</summary>
    public const double PairScale = 0.8;

    /// <summary>Distance of each copy's centre from the pair centre, in units of the copy's half-extent.</summary>
    public const double PairOffset = 1.4;

    /// <summary>Cell centre coordinate along one axis for column/row 0, 1, 2 (fractions of the side).</summary>
    public static double CellCenter(int index) => index switch { 0 => 0.2, 1 => 0.5, 2 => 0.8, _ => throw new ArgumentOutOfRangeException(nameof(index)) };

    /// <summary>Column (0..2) of a grid position.</summary>
    public static int Column(GridPosition p) => (int)p % 3;

    /// <summary>Row (0..2) of a grid position.</summary>
    public static int Row(GridPosition p) => (int)p / 3;

    /// <summary>The grid position of column/row indices.</summary>
    public static GridPosition FromCell(int column, int row) => (GridPosition)(row * 3 + column);

    /// <summary>Nominal half-extent of one object of a size (fraction of the side), before jitter.</summary>
    public static double HalfExtent(ObjectSize size, ObjectCount count) =>
        (size == ObjectSize.Small ? SmallHalfExtent : LargeHalfExtent) * (count == ObjectCount.Two ? PairScale : 1.0);

    /// <summary>Object placements (centre and half-extent, fractions of the side) of a scene.</summary>
    public static IReadOnlyList<(double CenterX, double CenterY, double HalfExtent)> Placements(TinyWorldScene scene)
    {
        var h = HalfExtent(scene.Size, scene.Count) * scene.JitterScale;
        var cx = CellCenter(Column(scene.Position)) + scene.JitterX;
        var cy = CellCenter(Row(scene.Position)) + scene.JitterY;
        if (scene.Count == ObjectCount.One)
            return [(cx, cy, h)];
        // Two copies side by side; keep both inside the image (the pair centre stays in its third of the image).
        var reach = (PairOffset + 1) * h + 0.02;
        cx = Math.Clamp(cx, reach, 1 - reach);
        return [(cx - PairOffset * h, cy, h), (cx + PairOffset * h, cy, h)];
    }
}

/// <summary>Point-in-shape tests in unit coordinates: the shape is centred at 0 and fills [-1,1]² (v points down).</summary>
public static class ShapeGeometry
{
    /// <summary>Whether (u, v) lies inside the unit shape.</summary>
    public static bool Contains(ShapeKind shape, double u, double v) => shape switch
    {
        ShapeKind.Circle => u * u + v * v <= 1.0,
        ShapeKind.Square => Math.Abs(u) <= 1.0 && Math.Abs(v) <= 1.0,
        ShapeKind.Triangle => v <= 1.0 && Math.Abs(u) <= (v + 1.0) * 0.5,
        ShapeKind.Diamond => Math.Abs(u) + Math.Abs(v) <= 1.0,
        ShapeKind.Cross => (Math.Abs(u) <= 1.0 / 3 && Math.Abs(v) <= 1.0) || (Math.Abs(v) <= 1.0 / 3 && Math.Abs(u) <= 1.0),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "Unknown shape."),
    };

    /// <summary>Area of the unit shape.</summary>
    public static double Area(ShapeKind shape) => shape switch
    {
        ShapeKind.Circle => Math.PI,
        ShapeKind.Square => 4.0,
        ShapeKind.Triangle => 2.0,
        ShapeKind.Diamond => 2.0,
        ShapeKind.Cross => 4.0 * 5.0 / 9.0,
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "Unknown shape."),
    };

    /// <summary>Vertical centroid of the unit shape (only the triangle is off-centre).</summary>
    public static double CentroidV(ShapeKind shape) => shape == ShapeKind.Triangle ? 1.0 / 3.0 : 0.0;
}

/// <summary>
/// A tiny supersampling rasterizer: each pixel averages 4x4 sub-samples of a paint function (null = keep what is below),
/// which anti-aliases outer and inner edges alike. Colours are averaged in sRGB byte space.
/// </summary>
internal sealed class Canvas
{
    const int Sub = 4;
    readonly float[] r, g, b;

    public Canvas(int width, int height, (byte R, byte G, byte B) background)
    {
        if (width < 8 || height < 8 || width > 4096 || height > 4096)
            throw new ArgumentOutOfRangeException(nameof(width), $"Image size {width}x{height} must be between 8 and 4096 pixels per side.");
        Width = width; Height = height;
        r = new float[width * height]; g = new float[width * height]; b = new float[width * height];
        Array.Fill(r, background.R); Array.Fill(g, background.G); Array.Fill(b, background.B);
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>Paints an object centred at (cx, cy) with half-extent h (fractions of the side); paint gets unit coordinates.</summary>
    public void Paint(double cx, double cy, double h, Func<double, double, (byte R, byte G, byte B)?> paint)
    {
        double pcx = cx * Width, pcy = cy * Height, phx = h * Width, phy = h * Height;
        int x0 = Math.Max(0, (int)Math.Floor(pcx - phx) - 1), x1 = Math.Min(Width - 1, (int)Math.Ceiling(pcx + phx) + 1);
        int y0 = Math.Max(0, (int)Math.Floor(pcy - phy) - 1), y1 = Math.Min(Height - 1, (int)Math.Ceiling(pcy + phy) + 1);
        for (var y = y0; y <= y1; y++)
            for (var x = x0; x <= x1; x++)
            {
                int i = y * Width + x, hits = 0;
                float sr = 0, sg = 0, sb = 0;
                for (var sy = 0; sy < Sub; sy++)
                    for (var sx = 0; sx < Sub; sx++)
                    {
                        var u = (x + (sx + 0.5) / Sub - pcx) / phx;
                        var v = (y + (sy + 0.5) / Sub - pcy) / phy;
                        var c = paint(u, v);
                        if (c is { } col) { sr += col.R; sg += col.G; sb += col.B; hits++; }
                        else { sr += r[i]; sg += g[i]; sb += b[i]; }
                    }
                if (hits == 0) continue;
                r[i] = sr / (Sub * Sub); g[i] = sg / (Sub * Sub); b[i] = sb / (Sub * Sub);
            }
    }

    public Image<Rgb24> ToImage()
    {
        var pixels = new Rgb24[Width * Height];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = new Rgb24(ToByte(r[i]), ToByte(g[i]), ToByte(b[i]));
        return Image.LoadPixelData<Rgb24>(pixels, Width, Height);
    }

    static byte ToByte(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);
}
