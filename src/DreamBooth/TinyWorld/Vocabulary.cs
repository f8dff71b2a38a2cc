namespace DreamBooth.TinyWorld;

/// <summary>The shapes of the tiny world. Every shape fills the same bounding box, so "size" is one number.</summary>
public enum ShapeKind { Circle, Square, Triangle, Diamond, Cross }

/// <summary>The named colours of the tiny world (used for shapes and backgrounds). See <see cref="TinyWorldPalette"/>.</summary>
public enum NamedColor { Red, Orange, Yellow, Green, Blue, Purple, White, Black }

/// <summary>Object size: a half-extent of <see cref="TinyWorldGeometry.SmallHalfExtent"/> or <see cref="TinyWorldGeometry.LargeHalfExtent"/>.</summary>
public enum ObjectSize { Small, Large }

/// <summary>Cell of the 3x3 grid that holds the object (or the pair of objects).</summary>
public enum GridPosition { TopLeft, Top, TopRight, Left, Center, Right, BottomLeft, Bottom, BottomRight }

/// <summary>How many copies of the shape the scene holds.</summary>
public enum ObjectCount { One, Two }

/// <summary>The sRGB values of the named colours and perceptual (CIELAB) distances between colours.</summary>
public static class TinyWorldPalette
{
    static readonly (byte R, byte G, byte B)[] Rgb =
    [
        (220, 40, 40),   // red
        (245, 140, 20),  // orange
        (245, 225, 40),  // yellow
        (40, 170, 60),   // green
        (40, 90, 230),   // blue
        (150, 50, 190),  // purple
        (245, 245, 245), // white
        (25, 25, 25),    // black
    ];

    /// <summary>All named colours, in enum order.</summary>
    public static IReadOnlyList<NamedColor> All { get; } = Enum.GetValues<NamedColor>();

    /// <summary>The sRGB value a colour is rendered with.</summary>
    public static (byte R, byte G, byte B) ToRgb(NamedColor color) => Rgb[(int)color];

    /// <summary>The CIELAB (D65) value of a named colour.</summary>
    public static (double L, double A, double B) ToLab(NamedColor color)
    {
        var (r, g, b) = Rgb[(int)color];
        return ColorMath.SrgbToLab(r, g, b);
    }

    /// <summary>The named colour nearest to an sRGB value (0..255 per channel) in CIELAB (ΔE76), and that distance.</summary>
    public static (NamedColor Color, double DeltaE) Nearest(double r, double g, double b)
    {
        var lab = ColorMath.SrgbToLab(r, g, b);
        var best = NamedColor.Red;
        var bestD = double.MaxValue;
        foreach (var c in All)
        {
            var d = ColorMath.DeltaE(lab, ToLab(c));
            if (d < bestD) { bestD = d; best = c; }
        }
        return (best, bestD);
    }
}

/// <summary>sRGB → CIELAB conversion (D65, ΔE76): a perceptual-ish space in which colour distances are compared.</summary>
public static class ColorMath
{
    /// <summary>Converts an sRGB colour (0..255 per channel) to CIELAB.</summary>
    public static (double L, double A, double B) SrgbToLab(double r, double g, double b)
    {
        double rl = Linear(r / 255.0), gl = Linear(g / 255.0), bl = Linear(b / 255.0);
        double x = (0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl) / 0.95047;
        double y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl;
        double z = (0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl) / 1.08883;
        double fx = F(x), fy = F(y), fz = F(z);
        return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz));

        static double Linear(double c) => c <= 0.04045 ? c / 12.92 : Math.Pow((Math.Clamp(c, 0, 1) + 0.055) / 1.055, 2.4);
        static double F(double t) => t > 216.0 / 24389 ? Math.Cbrt(t) : (24389.0 / 27 * t + 16) / 116;
    }

    /// <summary>Euclidean CIELAB distance (ΔE76).</summary>
    public static double DeltaE((double L, double A, double B) p, (double L, double A, double B) q)
    {
        double dl = p.L - q.L, da = p.A - q.A, db = p.B - q.B;
        return Math.Sqrt(dl * dl + da * da + db * db);
    }
}

/// <summary>
/// The words of the tiny world: attribute words, position phrases and every word any caption template uses.
/// A tokenizer for the tiny text encoder is built over <see cref="AllWords"/>.
/// </summary>
public static class TinyWorldVocabulary
{
    /// <summary>Singular noun of a shape ("circle").</summary>
    public static string Noun(ShapeKind shape) => shape switch
    {
        ShapeKind.Circle => "circle",
        ShapeKind.Square => "square",
        ShapeKind.Triangle => "triangle",
        ShapeKind.Diamond => "diamond",
        ShapeKind.Cross => "cross",
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "Unknown shape."),
    };

    /// <summary>Plural noun of a shape ("circles", "crosses").</summary>
    public static string Plural(ShapeKind shape) => shape == ShapeKind.Cross ? "crosses" : Noun(shape) + "s";

    /// <summary>Lower-case colour word ("red").</summary>
    public static string Word(NamedColor color) => color.ToString().ToLowerInvariant();

    /// <summary>Lower-case size word ("small", "large").</summary>
    public static string Word(ObjectSize size) => size == ObjectSize.Small ? "small" : "large";

    /// <summary>Count word ("one", "two").</summary>
    public static string Word(ObjectCount count) => count == ObjectCount.One ? "one" : "two";

    /// <summary>The position's name ("top left", "center").</summary>
    public static string Name(GridPosition position) => position switch
    {
        GridPosition.TopLeft => "top left",
        GridPosition.Top => "top",
        GridPosition.TopRight => "top right",
        GridPosition.Left => "left",
        GridPosition.Center => "center",
        GridPosition.Right => "right",
        GridPosition.BottomLeft => "bottom left",
        GridPosition.Bottom => "bottom",
        GridPosition.BottomRight => "bottom right",
        _ => throw new ArgumentOutOfRangeException(nameof(position), position, "Unknown position."),
    };

    /// <summary>The position as an adverbial phrase used in captions ("in the top left", "at the top", "on the left").</summary>
    public static string Phrase(GridPosition position) => position switch
    {
        GridPosition.Top or GridPosition.Bottom => "at the " + Name(position),
        GridPosition.Left or GridPosition.Right => "on the " + Name(position),
        _ => "in the " + Name(position),
    };

    static readonly Lazy<IReadOnlyList<string>> Words = new(() =>
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var template in Enum.GetValues<CaptionTemplate>())
            foreach (var shape in Enum.GetValues<ShapeKind>())
                foreach (var count in Enum.GetValues<ObjectCount>())
                    foreach (var size in Enum.GetValues<ObjectSize>())
                        foreach (var position in Enum.GetValues<GridPosition>())
                        {
                            var scene = new TinyWorldScene(shape, NamedColor.Red, size, position, NamedColor.Blue, count);
                            foreach (var w in TinyWorldCaptions.Tokenize(TinyWorldCaptions.Caption(scene, template)))
                                set.Add(w);
                        }
        foreach (var template in Enum.GetValues<CaptionTemplate>())
            foreach (var color in TinyWorldPalette.All)
                foreach (var background in TinyWorldPalette.All)
                {
                    if (color == background) continue;
                    var scene = new TinyWorldScene(ShapeKind.Circle, color, ObjectSize.Small, GridPosition.Center, background);
                    foreach (var w in TinyWorldCaptions.Tokenize(TinyWorldCaptions.Caption(scene, template)))
                        set.Add(w);
                    foreach (var w in TinyWorldCaptions.Tokenize(TinyWorldCaptions.PartialCaption(scene, CaptionParts.Color)))
                        set.Add(w);
                }
        foreach (var c in TinyWorldPalette.All) set.Add(Word(c));
        foreach (var c in Enum.GetValues<ObjectCount>()) set.Add(Word(c));
        return set.ToArray();
    });

    /// <summary>Every word that can appear in a caption (sorted, lower case, no punctuation).</summary>
    public static IReadOnlyList<string> AllWords => Words.Value;
}
