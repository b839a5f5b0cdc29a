/** The data source a config asks for. */
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import { FolderSource } from './folder.js';
import type { DataSource } from './source.js';
import { SyntheticSource } from './synthetic.js';

export async function makeDataSource(config: Config, log: Logger = createLogger({ component: 'data', stream: 'stderr' })): Promise<DataSource> {
  switch (config.data.source) {
    case 'folder':
      return FolderSource.open(config, log);
    case 'synthetic':
      return new SyntheticSource({
        seed: config.seed, identities: config.model.numClasses, imagesPerIdentity: config.data.syntheticImagesPerIdentity,
        validationFraction: config.data.validationFraction, imageSize: config.model.inputSize,
        lowResolution: config.validation.lowResolution, maxValidation: config.validation.maxImages,
      });
  }
}
