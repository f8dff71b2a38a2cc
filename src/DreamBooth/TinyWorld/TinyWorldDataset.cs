using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>Which part of the domain a dataset draws from.</summary>
public enum TinyWorldSplit
{
    /// <summary>Every scene except the held-out shape/background combinations.</summary>
    Train,
    /// <summary>Only the held-out shape/background combinations (captions never seen in training).</summary>
    HeldOut,
}

/// <summary>Options of <see cref="TinyWorldDataset"/>.</summary>
public sealed record TinyWorldDatasetOptions
{
    /// <summary>Seed: the same seed gives the same scenes, captions and pixels.</summary>
    public int Seed { get; init; }

    /// <summary>Number of samples.</summary>
    public int Count { get; init; } = 1000;

    /// <summary>Side of the rendered square images in pixels (the tiny model works at 64).</summary>
    public int ImageSize { get; init; } = 64;

    /// <summary>Which split to draw from.</summary>
    public TinyWorldSplit Split { get; init; } = TinyWorldSplit.Train;

    /// <summary>Probability that a scene holds two copies of its shape.</summary>
    public double TwoObjectsProbability { get; init; } = 0.2;

    /// <summary>Maximum offset of the object from its cell centre (fraction of the side, ≤ 0.05).</summary>
    public double PositionJitter { get; init; } = 0.04;

    /// <summary>Maximum relative size change (≤ 0.1): half-extents vary in [1-j, 1+j] × nominal.</summary>
    public double ScaleJitter { get; init; } = 0.08;

    /// <summary>
    /// Probability that a caption names only a random subset of the attributes (the shape noun always stays),
    /// which teaches the model short prompts such as the class prompt "a diamond". 0 = every caption is complete.
    /// </summary>
    public double PartialCaptionProbability { get; init; }

    /// <summary>Throws with the offending option's name and the fix.</summary>
    public void Validate()
    {
        if (Count < 0) throw new ArgumentOutOfRangeException(nameof(Count), Count, "Count must be ≥ 0.");
        if (ImageSize < 8 || ImageSize > 4096) throw new ArgumentOutOfRangeException(nameof(ImageSize), ImageSize, "ImageSize must be between 8 and 4096 pixels.");
        if (!(TwoObjectsProbability >= 0 && TwoObjectsProbability <= 1)) throw new ArgumentOutOfRangeException(nameof(TwoObjectsProbability), TwoObjectsProbability, "TwoObjectsProbability must lie in [0, 1].");
        if (!(PositionJitter >= 0 && PositionJitter <= 0.05)) throw new ArgumentOutOfRangeException(nameof(PositionJitter), PositionJitter, "PositionJitter must lie in [0, 0.05] so objects stay in their cell.");
        if (!(ScaleJitter >= 0 && ScaleJitter <= 0.1)) throw new ArgumentOutOfRangeException(nameof(ScaleJitter), ScaleJitter, "ScaleJitter must lie in [0, 0.1] so small and large stay distinct.");
        if (!(PartialCaptionProbability >= 0 && PartialCaptionProbability <= 1)) throw new ArgumentOutOfRangeException(nameof(PartialCaptionProbability), PartialCaptionProbability, "PartialCaptionProbability must lie in [0, 1].");
    }
}

/// <summary>One captioned sample: the scene, its caption and the image side; <see cref="Render"/> draws it.</summary>
public sealed record TinyWorldSample(int Index, TinyWorldScene Scene, string Caption, int ImageSize)
{
    /// <summary>Renders the sample's image.</summary>
    public Image<Rgb24> Render() => Scene.Render(ImageSize);
}

/// <summary>
/// A deterministic captioned dataset of tiny-world scenes. Sample i depends only on (seed, i) (SplitMix64 stream),
/// so samples can be drawn in any order. The split holds out whole shape/background COMBINATIONS
/// (<see cref="HeldOutPairs"/>): the train split never contains them, the held-out split contains only them.
/// </summary>
public sealed class TinyWorldDataset : IReadOnlyList<TinyWorldSample>
{
    /// <summary>Shape/background combinations reserved for evaluation (one per shape; none is in the train split).</summary>
    public static IReadOnlyList<(ShapeKind Shape, NamedColor Background)> HeldOutPairs { get; } =
    [
        (ShapeKind.Circle, NamedColor.Green),
        (ShapeKind.Square, NamedColor.Purple),
        (ShapeKind.Triangle, NamedColor.Blue),
        (ShapeKind.Diamond, NamedColor.White),
        (ShapeKind.Cross, NamedColor.Yellow),
    ];

    /// <summary>Whether a scene's shape/background combination is held out of training.</summary>
    public static bool IsHeldOut(TinyWorldScene scene) => HeldOutPairs.Contains((scene.Shape, scene.Background));

    readonly TinyWorldDatasetOptions options;

    /// <summary>Creates the dataset (validates the options; samples are generated on access).</summary>
    public TinyWorldDataset(TinyWorldDatasetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    /// <summary>The options the dataset was built with.</summary>
    public TinyWorldDatasetOptions Options => options;

    /// <summary>Number of samples.</summary>
    public int Count => options.Count;

    /// <summary>Sample <paramref name="index"/> (depends only on the seed and the index).</summary>
    public TinyWorldSample this[int index]
    {
        get
        {
            if ((uint)index >= (uint)options.Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"Index must be in [0, {options.Count}).");
            return Sample(index);
        }
    }

    /// <summary>Enumerates the samples in index order.</summary>
    public IEnumerator<TinyWorldSample> GetEnumerator()
    {
        for (var i = 0; i < options.Count; i++) yield return Sample(i);
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    TinyWorldSample Sample(int index)
    {
        var rng = new SplitMix64(unchecked(((ulong)(uint)options.Seed << 32) ^ (ulong)(uint)index ^ 0x7469_6E79_776F_726CUL));
        var shapes = Enum.GetValues<ShapeKind>();
        var colors = Enum.GetValues<NamedColor>();
        ShapeKind shape; NamedColor background;
        if (options.Split == TinyWorldSplit.HeldOut)
            (shape, background) = HeldOutPairs[rng.Next(HeldOutPairs.Count)];
        else
            do { shape = shapes[rng.Next(shapes.Length)]; background = colors[rng.Next(colors.Length)]; }
            while (HeldOutPairs.Contains((shape, background)));
        NamedColor color;
        do color = colors[rng.Next(colors.Length)]; while (color == background);
        var size = rng.NextDouble() < 0.5 ? ObjectSize.Small : ObjectSize.Large;
        var position = (GridPosition)rng.Next(9);
        var count = rng.NextDouble() < options.TwoObjectsProbability ? ObjectCount.Two : ObjectCount.One;
        var scene = new TinyWorldScene(shape, color, size, position, background, count)
        {
            JitterX = (rng.NextDouble() * 2 - 1) * options.PositionJitter,
            JitterY = (rng.NextDouble() * 2 - 1) * options.PositionJitter,
            JitterScale = 1 + (rng.NextDouble() * 2 - 1) * options.ScaleJitter,
        };
        var template = (CaptionTemplate)rng.Next(Enum.GetValues<CaptionTemplate>().Length);
        var partial = rng.NextDouble() < options.PartialCaptionProbability;
        var parts = (CaptionParts)rng.Next(16);
        var caption = partial && parts != CaptionParts.All ? TinyWorldCaptions.PartialCaption(scene, parts) : scene.Caption(template);
        return new TinyWorldSample(index, scene, caption, options.ImageSize);
    }
}

/// <summary>SplitMix64 (Steele, Lea, Flood 2014): a tiny, platform-independent, seedable generator.</summary>
internal sealed class SplitMix64(ulong seed)
{
    ulong state = seed;

    public ulong NextUInt64()
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n).</summary>
    public int Next(int n) => (int)(NextDouble() * n);

    /// <summary>Standard normal (Box–Muller).</summary>
    public double NextGaussian()
    {
        var u1 = 1.0 - NextDouble();
        var u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
