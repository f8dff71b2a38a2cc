using System.Globalization;
using System.Text;

namespace DreamBooth.Imaging.Import;

/// <summary>The rules of thumb for UNet training steps that fast-DreamBooth users quoted (they contradict each other).</summary>
public enum StepsRule
{
    /// <summary>~50–100 steps per instance image (scales with the set; the default).</summary>
    PerImage,

    /// <summary>images × 10.</summary>
    ImagesTimesTen,

    /// <summary>650 steps in total, whatever the number of images.</summary>
    FixedTotal650,
}

/// <summary>A steps recommendation that says which rule produced it and why.</summary>
/// <param name="ImageCount">Number of usable instance images.</param>
/// <param name="RecommendedSteps">Steps for a first training session.</param>
/// <param name="LowSteps">Lower end of the sensible range (50 per image).</param>
/// <param name="HighSteps">Upper end of the sensible range (100 per image).</param>
/// <param name="Rule">The rule the recommendation used.</param>
/// <param name="Explanation">Why that rule and that number, and what the other rules would have said.</param>
/// <param name="Warnings">Set-size warnings (fewer than 10 or more than 30 images).</param>
public sealed record StepsRecommendation(
    int ImageCount,
    int RecommendedSteps,
    int LowSteps,
    int HighSteps,
    StepsRule Rule,
    string Explanation,
    IReadOnlyList<string> Warnings)
{
    /// <summary>Multi-line text for the CLI.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Steps: {RecommendedSteps} (rule: {Rule}; range {LowSteps}-{HighSteps}).\n");
        sb.Append("  ").Append(Explanation).Append('\n');
        foreach (var w in Warnings) sb.Append("  warning: ").Append(w).Append('\n');
        return sb.ToString();
    }

    public override string ToString() => ToText();
}

/// <summary>
/// Turns the number of instance images into a UNet step count, stating the rule it used. WORKFLOW.md quotes three
/// contradictory rules of thumb (~50–100 steps per image; images × 10; 650 steps total); by default the calculator uses
/// the per-image rule, because it is the only one that scales with the set and agrees with the "650" figure for the
/// 7–13 image sets it was quoted for, and it recommends the middle (75/image) because resuming for a few hundred more
/// steps beats over-training in one session.
/// </summary>
public static class StepsCalculator
{
    /// <summary>Steps per image at the low and high end of the quoted per-image rule.</summary>
    public const int LowPerImage = 50, HighPerImage = 100;

    /// <summary>The image counts that "worked best" (12–25); warnings fire outside 10–30.</summary>
    public const int FewImages = 10, ManyImages = 30;

    /// <summary>Recommends UNet training steps for <paramref name="imageCount"/> images.</summary>
    /// <param name="imageCount">Usable instance images (after removing skipped ones).</param>
    /// <param name="rule">Which rule of thumb to apply (default: per image).</param>
    /// <param name="stepsPerImage">For <see cref="StepsRule.PerImage"/>: steps per image, 50–100 (default 75).</param>
    public static StepsRecommendation Recommend(int imageCount, StepsRule rule = StepsRule.PerImage, int stepsPerImage = 75)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(imageCount);
        if (stepsPerImage < 1)
            throw new ArgumentOutOfRangeException(nameof(stepsPerImage), stepsPerImage, "stepsPerImage must be positive; the quoted rule is 50-100.");
        var inv = CultureInfo.InvariantCulture;
        int n = imageCount, low = LowPerImage * n, high = HighPerImage * n;
        var warnings = new List<string>();
        if (n == 0)
            return new StepsRecommendation(0, 0, 0, 0, rule,
                "No usable images were imported, so there is nothing to train on; fix or replace the skipped files.",
                ["no usable instance images."]);
        if (n < FewImages)
            warnings.Add(string.Format(inv, "only {0} image(s): users found 12-25 good images worked best and 5 low-quality images were too few; add varied, sharp shots (full-body, mid-body and head).", n));
        if (n > ManyImages)
            warnings.Add(string.Format(inv, "{0} images: more than 30; many careless images gave outputs that did not look like the subject. Keep the best 12-25 (sharp, well lit, face in frame).", n));

        int steps;
        string why;
        string others;
        switch (rule)
        {
            case StepsRule.ImagesTimesTen:
                steps = 10 * n;
                why = string.Format(inv, "Used 'images x 10' as asked: {0} x 10 = {1}.", n, steps);
                others = string.Format(inv, " That is {0} steps per image, well below the ~50-100 per image others quoted ({1}-{2} here); expect an under-trained subject.", 10, low, high);
                break;
            case StepsRule.FixedTotal650:
                steps = 650;
                why = "Used the fixed '650 steps' total as asked, whatever the number of images.";
                others = string.Format(inv, " For {0} image(s) that is {1:0.#} steps per image, {2} the ~50-100 per image rule ({3}-{4} here).",
                    n, 650.0 / n, 650.0 / n < LowPerImage ? "below" : 650.0 / n > HighPerImage ? "above" : "within", low, high);
                break;
            default:
                steps = stepsPerImage * n;
                why = string.Format(inv, "Used ~50-100 steps per image, the only quoted rule that scales with the set: {0} x {1} = {2}.", n, stepsPerImage, steps);
                others = string.Format(inv,
                    " The other rules disagree: 'images x 10' gives {0} (only 10 per image, too few to learn a subject) and '650 total' ignores the set size (it matches 50-100 per image only for 7-13 images).",
                    10 * n);
                break;
        }
        var explanation = why + others +
            " Start here; if the subject is not recognisable yet, resume for a few hundred more steps rather than retraining longer from scratch, and compare with a fixed-seed X/Y plot before training again. Near-copies of an instance photo mean too many steps.";
        return new StepsRecommendation(n, steps, low, high, rule, explanation, warnings);
    }
}
