/** The data source a config asks for. (The VGGFace2 folder reader arrives with issue #4.) */
import type { Config } from '../../shared/config/schema.js';
import type { DataSource } from './source.js';
import { SyntheticSource } from './synthetic.js';

export async function makeDataSource(config: Config): Promise<DataSource> {
  switch (config.data.source) {
    case 'folder':
      throw new Error('data.source "folder" is being built (issue #4)');
    case 'synthetic':
      return new SyntheticSource({
        seed: config.seed, identities: config.model.numClasses, imagesPerIdentity: config.data.syntheticImagesPerIdentity,
        validationFraction: config.data.validationFraction, imageSize: config.model.inputSize,
        lowResolution: config.validation.lowResolution, maxValidation: config.validation.maxImages,
      });
  }
}
