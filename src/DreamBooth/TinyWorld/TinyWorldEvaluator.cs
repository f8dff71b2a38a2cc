using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>Which requested attributes an image obeys (null = not requested).</summary>
public sealed record PromptFidelity
{
    /// <summary>Whether any object was found.</summary>
    public bool ObjectPresent { get; init; }

    /// <summary>Shape obeyed (null = not requested); likewise for the other attributes.</summary>
    public bool? Shape { get; init; }
    public bool? Color { get; init; }
    public bool? Size { get; init; }
    public bool? Position { get; init; }
    public bool? Background { get; init; }
    public bool? Count { get; init; }

    /// <summary>Subject fidelity when the request names the subject, else null.</summary>
    public SubjectFidelityResult? Subject { get; init; }

    /// <summary>The measurement the checks were made on.</summary>
    public required SceneMeasurement Measurement { get; init; }

    /// <summary>Whether every requested attribute is obeyed (and an object is present).</summary>
    public bool AllObeyed => ObjectPresent && new[] { Shape, Color, Size, Position, Background, Count }.All(b => b != false);

    /// <summary>Checks an image against a request.</summary>
    public static PromptFidelity Check(Image<Rgb24> image, SceneRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var seg = Segmentation.Compute(FloatImage.From(image));
        var m = TinyWorldMeasurements.Measure(seg);
        bool? Is<T>(T? wanted, T? got) where T : struct => wanted is { } w ? got is { } g && EqualityComparer<T>.Default.Equals(w, g) : null;
        return new PromptFidelity
        {
            Measurement = m,
            ObjectPresent = m.ObjectPresent,
            Shape = Is(request.Shape, m.Shape),
            Color = request.IsSubject ? null : Is(request.Color, m.Color),
            Size = Is(request.Size, m.Size),
            Position = Is(request.Position, m.Position),
            Background = request.Background is { } bg ? bg == m.Background : null,
            Count = Is(request.Count, m.Count),
            Subject = request.IsSubject ? SubjectFidelity.Score(seg) : null,
        };
    }
}

/// <summary>Correct / total for one attribute; <see cref="Accuracy"/> is null when never requested.</summary>
public sealed record AttributeAccuracy(int Correct, int Total)
{
    /// <summary>Correct / Total, or null when the attribute was never requested.</summary>
    public double? Accuracy => Total == 0 ? null : Correct / (double)Total;

    public override string ToString() => Total == 0 ? "n/a" : $"{Correct}/{Total} ({Accuracy:P1})";
}

/// <summary>Per-attribute accuracies over a set of (image, request) pairs.</summary>
public sealed record TinyWorldEvaluation(
    int Images,
    AttributeAccuracy ObjectPresent,
    AttributeAccuracy Shape,
    AttributeAccuracy Color,
    AttributeAccuracy Size,
    AttributeAccuracy Position,
    AttributeAccuracy Background,
    AttributeAccuracy Count,
    AttributeAccuracy AllObeyed,
    double? MeanSubjectFidelity)
{
    /// <summary>Evaluates generated (or rendered) images against what their prompts requested.</summary>
    public static TinyWorldEvaluation Evaluate(IEnumerable<(Image<Rgb24> Image, SceneRequest Request)> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var checks = new List<PromptFidelity>();
        foreach (var (image, request) in items)
        {
            cancellationToken.ThrowIfCancellationRequested();
            checks.Add(PromptFidelity.Check(image, request));
        }
        AttributeAccuracy Acc(Func<PromptFidelity, bool?> f)
        {
            var vals = checks.Select(f).Where(v => v.HasValue).ToList();
            return new AttributeAccuracy(vals.Count(v => v == true), vals.Count);
        }
        var subject = checks.Where(c => c.Subject != null).Select(c => c.Subject!.Score).ToList();
        return new TinyWorldEvaluation(
            checks.Count, Acc(c => c.ObjectPresent), Acc(c => c.Shape), Acc(c => c.Color), Acc(c => c.Size),
            Acc(c => c.Position), Acc(c => c.Background), Acc(c => c.Count), Acc(c => c.AllObeyed),
            subject.Count > 0 ? subject.Average() : null);
    }

    /// <summary>Evaluates images of known scenes (every attribute requested).</summary>
    public static TinyWorldEvaluation Evaluate(IEnumerable<(Image<Rgb24> Image, TinyWorldScene Scene)> items, CancellationToken cancellationToken = default) =>
        Evaluate(items.Select(p => (p.Image, SceneRequest.From(p.Scene))), cancellationToken);

    public override string ToString() =>
        $"images {Images}: present {ObjectPresent}, shape {Shape}, colour {Color}, size {Size}, position {Position}, " +
        $"background {Background}, count {Count}, all {AllObeyed}" + (MeanSubjectFidelity is { } f ? $", subject fidelity {f:F3}" : "");
}
